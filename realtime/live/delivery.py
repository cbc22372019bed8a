"""Handing stored events to the channel layer: the session's viewers, the waking processes, then the
dashboard; memory to staff.

Messages (``new_message``) and staff's changes to a session (``session_state``) take the same way.

The broadcast door (events a publisher POSTs) and the publisher's channel-layer
strategy (``realtime.publisher``: in Daphne, or wherever the layer is shared) both
go through ``deliver_many`` (one session's batch or several, memory events among them),
so every path reaches the same groups with the same messages.
The wake group carries every session's messages to the sidecars' wake hubs
(``realtime.wake_stream``: on the shared layer itself, or relayed by
``realtime.live.wake_relay`` over a WebSocket), one layer message per request.

Each event is encoded and rendered here once for all viewers, whatever their
number: ``texts`` (the envelope, for agents) and ``page_texts`` (with the
message's ``html``, ``realtime.fragments``, for pages). On a layer that reaches
only this process, a session no page watches here gets no ``page_texts``: its
viewers are agents, and rendering was 15 % of Daphne's CPU at 1,000 agents over
100 sessions. A page that joins later renders what it misses itself.
"""

import collections

from asgiref.sync import sync_to_async
from channels import layers
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from realtime.envelope import MEMORY_TARGET, SESSION_STATE, encode
from realtime.fragments import page_event
from realtime.live import dashboard, memory
from realtime.live.groups import WAKE_GROUP, session_group
from realtime.models import Session

KNOWN_SESSIONS = 10_000
INLINE_RENDER_CHARS = 2_000  # content characters in a batch rendered on the loop itself
_known = collections.OrderedDict()  # session id -> {"id", "purpose", "created_by"}, newest last
_pages = collections.Counter()  # session id -> pages of this process in the session's group


def page_joined(session_id):
    """A page of this process joined the session's group (``SessionConsumer``); ``page_left`` once it leaves."""
    _pages[session_id] += 1


def page_left(session_id):
    _pages[session_id] -= 1
    if _pages[session_id] <= 0:
        del _pages[session_id]


def pages_may_watch(layer, session_id):
    """False only when no page of this process watches the session and ``layer`` reaches no other process."""
    return session_id in _pages or not isinstance(layer, layers.InMemoryChannelLayer)


async def session_info(session_id):
    """The session's id, purpose and creator, or None when there is no such session.

    Kept for the sessions this process delivered to lately, so a broadcast costs no query.
    """
    info = _known.get(session_id)
    if info is None:
        info = await _read_session_info(session_id)
        if info is None:
            return None
        _known[session_id] = info
        if len(_known) > KNOWN_SESSIONS:
            _known.popitem(last=False)
    else:
        _known.move_to_end(session_id)
    return info


@database_sync_to_async  # stale connections closed around it: the broadcast door does no other hygiene
def _read_session_info(session_id):
    return Session.objects.filter(pk=session_id).values("id", "purpose", "created_by").first()


def _page_frames(events):
    return [encode(page_event(event)) for event in events]


async def page_frames(events):
    """Each event as a page's frame, with its html; a long batch is rendered off the loop.

    Rendering is ~0.1 ms for a short message, a few ms with highlighted code, ~30 ms for 10 KB
    (``python -m bench render``): past ``INLINE_RENDER_CHARS`` a worker thread does it, so the
    loop goes on serving every other connection meanwhile.
    """
    if sum(len(event["data"]["content"]) for event in events) <= INLINE_RENDER_CHARS:
        return _page_frames(events)
    return await sync_to_async(_page_frames, thread_sensitive=False)(events)


async def deliver_many(batches):
    """Deliver each ``(target, events)`` of ``batches`` in turn, with one wake message for all their messages.

    Returns the targets that are sessions this database does not hold (their events go nowhere).
    """
    missing, woken = [], []
    for target, events in batches:
        if target == MEMORY_TARGET:
            await deliver_memory(events)
            continue
        messages = await _deliver_session(target, events)
        if messages is None:
            missing.append(target)
        else:
            woken += messages
    await _wake(woken)
    return missing


async def _deliver_session(session_id, events):
    """Deliver one session's events to its viewers and the dashboard; its messages (in seq order) for the wake
    group, or None when there is no such session."""
    session = await session_info(session_id)
    if session is None:
        return None
    states = [event for event in events if event["type"] == SESSION_STATE]
    events = sorted((event for event in events if event["type"] != SESSION_STATE), key=lambda event: event["seq"])
    layer = get_channel_layer()
    if events:
        # Encoded (and rendered) once here rather than once per viewer.
        texts = [encode(event) for event in events]
        # No await between the check and the group_send: a page joining meanwhile cannot miss page_texts.
        page_texts = await page_frames(events) if pages_may_watch(layer, session_id) else None
        await layer.group_send(session_group(session_id), {"type": "session.events", "events": events,
                                                           "texts": texts, "page_texts": page_texts})
        counted = await dashboard.tally(session_id, events)
        await layer.group_send(dashboard.DASHBOARD_GROUP, dashboard.summary(session, events, counted))
    for state in states:
        await deliver_state(session, state)
    return events


async def _wake(messages):
    """The sidecars' wake hubs get ``messages`` (of any sessions) in one layer message."""
    if messages:
        await get_channel_layer().group_send(WAKE_GROUP, {"type": "wake.events", "events": messages})


async def deliver_state(session, event):
    """A ``session_state`` event to the session's viewers and to the dashboard (every viewer may see it)."""
    session.update(purpose=event["data"]["purpose"])  # the cached summary info follows a new purpose
    layer = get_channel_layer()
    await layer.group_send(session_group(session["id"]), {"type": "session.state", "text": encode(event)})
    await layer.group_send(dashboard.DASHBOARD_GROUP, dashboard.state(event))


async def deliver_memory(events):
    """Group-send memory events to the staff pages that show them (``realtime.live.memory``); always True."""
    await memory.deliver(events)
    return True
