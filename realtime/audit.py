"""Recording who did what: authentications, session creation, admin writes, refusals.

Events older than ``SCS_AUDIT_RETENTION_DAYS`` are deleted as new ones are
recorded: at most once an hour per process, and at most ``PRUNE_BATCH`` rows a
time (a full batch leaves the next event to continue), so no write ever waits
on a long delete.
"""

import threading
import time
from datetime import timedelta

from django.db.models import Subquery
from django.utils import timezone

from realtime import conf
from realtime.models import AuditEvent

PRUNE_EVERY = 3600.0  # seconds between prunes in one process
PRUNE_BATCH = 10_000

_pruned_at = None
_prune_lock = threading.Lock()


def prune(now=None):
    """Delete up to ``PRUNE_BATCH`` events past the retention period; returns how many."""
    cutoff = (now or timezone.now()) - timedelta(days=conf.get("SCS_AUDIT_RETENTION_DAYS"))
    oldest = AuditEvent.objects.filter(timestamp__lt=cutoff).order_by("timestamp").values("pk")[:PRUNE_BATCH]
    return AuditEvent.objects.filter(pk__in=Subquery(oldest)).delete()[0]


def _prune_due():
    global _pruned_at
    with _prune_lock:
        now = time.monotonic()
        if _pruned_at is not None and now - _pruned_at < PRUNE_EVERY:
            return False
        _pruned_at = now
        return True


def record(event_type, agent_id="", session_id="", **detail):
    global _pruned_at
    if _prune_due() and prune() == PRUNE_BATCH:
        _pruned_at = None  # more to delete: the next event continues
    AuditEvent.objects.create(event_type=event_type, agent_id=agent_id, session_id=session_id or "", detail=detail)
