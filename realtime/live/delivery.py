"""Handing stored events to the channel layer: the session's viewers, then the dashboard.

Messages (``new_message``) and staff's changes to a session (``session_state``) take the same way.

The broadcast door (events a publisher POSTs) and the publisher's channel-layer
strategy (``realtime.publisher``: in Daphne, or wherever the layer is shared) both
go through ``deliver``, so every path reaches the same groups with the same messages.
"""

import collections

from channels.layers import get_channel_layer

from realtime.envelope import SESSION_STATE, encode
from realtime.live import dashboard
from realtime.live.groups import session_group
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
    """Group-send ``events`` of one session: messages in seq order, then state changes; False when no such session."""
    session = await session_info(session_id)
    if session is None:
        return False
    states = [event for event in events if event["type"] == SESSION_STATE]
    events = sorted((event for event in events if event["type"] != SESSION_STATE), key=lambda event: event["seq"])
    layer = get_channel_layer()
    if events:
        # Encoded once here rather than once per viewer.
        texts = [encode(event) for event in events]
        await layer.group_send(session_group(session_id), {"type": "session.events", "events": events, "texts": texts})
        counted = await dashboard.tally(session_id, events)
        await layer.group_send(dashboard.DASHBOARD_GROUP, dashboard.summary(session, events, counted))
    for state in states:
        await deliver_state(session, state)
    return True


async def deliver_state(session, event):
    """A ``session_state`` event to the session's viewers and to the dashboard (every viewer may see it)."""
    session.update(purpose=event["data"]["purpose"])  # the cached summary info follows a new purpose
    layer = get_channel_layer()
    await layer.group_send(session_group(session["id"]), {"type": "session.state", "text": encode(event)})
    await layer.group_send(dashboard.DASHBOARD_GROUP, dashboard.state(event))
