"""Resource templates: a session as its reader sees it, and an agent's own memory.

The caller is identified by ``Authorization: Bearer <token>`` (resources take no
arguments besides the URI); the same visibility rule as the tools applies.
"""

import json
import logging

from django.db.models import Count
from fastmcp.exceptions import ResourceError

from mcp_sidecar.app import mcp, orm_call
from mcp_sidecar.auth import caller
from mcp_sidecar.tools.sessions import session_record
from realtime import audit, memory, operations, reads
from realtime.envelope import message_record
from realtime.errors import ErrorCode, OperationError

RECENT = 100


def refuse_read(exc):
    # A refused read is the caller's mistake: not worth a traceback in the log.
    raise ResourceError(f"{exc.code}: {exc.message}. {exc.hint}".strip(), log_level=logging.INFO) from None


def resource_errors(fn):
    """Fresh DB connection state; an OperationError becomes a resource error naming its code."""
    return orm_call(fn, refuse_read)


@mcp.resource("session://{session_id}", mime_type="application/json", name="session")
@resource_errors
def session_resource(session_id: str) -> str:
    """A session: its details, its newest messages you may read (up to 100, oldest first) and statistics.

    The messages stop at the read budget; has_more says older ones exist.
    """
    viewer = caller(None)
    session = operations.get_session(session_id)
    visible = operations.visible_messages(viewer, session.id)
    recent, has_more = reads.page(visible.order_by("-seq"), RECENT)
    recent.reverse()
    by_visibility = dict(visible.order_by().values_list("visibility").annotate(n=Count("pk")))
    senders = dict(visible.order_by().values_list("sender").annotate(n=Count("pk")))
    return json.dumps({
        "session": session_record(session),
        "messages": [message_record(m) for m in recent],
        "has_more": has_more,
        "statistics": {
            "visible_messages": sum(by_visibility.values()),
            "by_visibility": by_visibility,
            "by_sender": senders,
            "last_seq": session.last_seq,
        },
    })


@mcp.resource("agent://{agent_id}/memory", mime_type="application/json", name="agent-memory")
@resource_errors
def agent_memory_resource(agent_id: str) -> str:
    """Your own private memory (unexpired entries, global and per session). Only readable by that agent."""
    viewer = caller(None)
    if viewer.id != agent_id:
        audit.record("permission_denied", viewer.id, resource="agent_memory", target_agent=agent_id[:100])
        raise OperationError(
            ErrorCode.PERMISSION_DENIED, "an agent's memory is readable only by that agent",
            f"Read agent://{viewer.id}/memory instead.",
        )
    return json.dumps(memory.agent_memory(agent_id))
