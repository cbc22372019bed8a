"""Handing stored events to the channel layer: the session's viewers, the waking processes, then the dashboard.

The broadcast door (events a publisher POSTs) and the publisher's channel-layer
strategy (``realtime.publisher``: in Daphne, or wherever the layer is shared) both
go through ``deliver``, so every path reaches the same groups with the same messages. The wake
group carries every session's events to the sidecars' wake hubs (``realtime.wake_stream``: on
the shared layer itself, or relayed by ``realtime.live.wake_relay`` over a WebSocket).
"""

import collections

from channels.layers import get_channel_layer

from realtime.envelope import encode
from realtime.live import dashboard
from realtime.live.groups import WAKE_GROUP, session_group
from realtime.models import Session

KNOWN_SESSIONS = 10_000
_known = collections.OrderedDict()  # session id -> {"id", "purpose", "created_by"}, newest last


async def session_info(session_id):
    """The session's id, purpose and creator, or None when there is no such session.

    Kept for the sessions this process delivered to lately, so a broadcast costs no query.
    """
    info = _known.get(session_id)
    if info is None:
        info = await Session.objects.filter(pk=session_id).values("id", "purpose", "created_by").afirst()
        if info is None:
            return None
        _known[session_id] = info
        if len(_known) > KNOWN_SESSIONS:
            _known.popitem(last=False)
    else:
        _known.move_to_end(session_id)
    return info


async def deliver(session_id, events):
    """Group-send ``events`` of one session in seq order; False when there is no such session."""
    session = await session_info(session_id)
    if session is None:
        return False
    events = sorted(events, key=lambda event: event["seq"])
    layer = get_channel_layer()
    # Encoded once here rather than once per viewer.
    texts = [encode(event) for event in events]
    await layer.group_send(session_group(session_id), {"type": "session.events", "events": events, "texts": texts})
    await layer.group_send(WAKE_GROUP, {"type": "wake.events", "events": events})
    counted = await dashboard.tally(session_id, events)
    await layer.group_send(dashboard.DASHBOARD_GROUP, dashboard.summary(session, events, counted))
    return True
