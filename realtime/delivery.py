"""Handing stored events to the channel layer: the session's viewers, then the dashboard.

The broadcast view (events the sidecar POSTs) and ``realtime.publish`` (events from
host code, when the channel layer is shared between processes) both go through
``deliver``, so every path reaches the same groups with the same messages.
"""

from channels.layers import get_channel_layer

from realtime import dashboard
from realtime.envelope import encode
from realtime.groups import session_group
from realtime.models import Session

SUMMARY_FIELDS = ("id", "purpose", "created_by", "last_seq", "updated_at")


async def deliver(session_id, events):
    """Group-send ``events`` of one session in seq order; False when there is no such session."""
    session = await Session.objects.filter(pk=session_id).values(*SUMMARY_FIELDS).afirst()
    if session is None:
        return False
    events = sorted(events, key=lambda event: event["seq"])
    layer = get_channel_layer()
    # Encoded once here rather than once per viewer.
    texts = [encode(event) for event in events]
    await layer.group_send(session_group(session_id), {"type": "session.events", "events": events, "texts": texts})
    await layer.group_send(dashboard.DASHBOARD_GROUP, dashboard.summary(session, events))
    return True
