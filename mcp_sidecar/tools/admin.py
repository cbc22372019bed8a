"""Admin tools: performance figures of this sidecar and its database."""

from typing import Literal, TypedDict

from django.db import connection
from django.utils import timezone

from mcp_sidecar.app import agent_tool
from mcp_sidecar.metrics import tool_metrics
from mcp_sidecar.params import AuthToken
from mcp_sidecar.results import JsonObject, Timestamp
from realtime import timestamps, wake_stream
from realtime.models import AuditEvent, MemoryEntry, Message, Session
from realtime.publisher import get_publisher


def database_figures():
    """Vendor, row counts and connection figures of the database both processes share."""
    figures = {
        "vendor": connection.vendor,
        "sessions": Session.objects.count(),
        "active_sessions": Session.objects.filter(is_active=True).count(),
        "messages": Message.objects.count(),
        "memory_entries": MemoryEntry.objects.exclude(expires_at__lte=timezone.now()).count(),
        "audit_events": AuditEvent.objects.count(),
        "conn_max_age": connection.settings_dict.get("CONN_MAX_AGE"),
    }
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("PRAGMA journal_mode")
            figures["journal_mode"] = cursor.fetchone()[0]
        elif connection.vendor == "postgresql":
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
            figures["server_connections"] = cursor.fetchone()[0]
    return figures


class ToolFigures(TypedDict):
    calls: int
    errors: int
    p50_ms: float
    p99_ms: float


class PerformanceMetrics(TypedDict):
    success: Literal[True]
    timestamp: Timestamp
    uptime_seconds: int
    tools: dict[str, ToolFigures]
    bridge: JsonObject
    wake: JsonObject
    database: JsonObject


@agent_tool(permission="admin")
def get_performance_metrics(auth_token: AuthToken = None) -> PerformanceMetrics:
    """Request counts and latencies per tool, the publisher's counters (as ``bridge``), the waiting calls and
    what wakes them (as ``wake``), database figures.

    Latencies (p50_ms, p99_ms) cover the latest 1000 calls of each tool in this sidecar process.
    """
    metrics = tool_metrics.snapshot()
    return {
        "success": True,
        "timestamp": timestamps.now(),
        "uptime_seconds": metrics["uptime_seconds"],
        "tools": metrics["tools"],
        "bridge": get_publisher().stats(),
        "wake": wake_stream.stats(),
        "database": database_figures(),
    }
