"""What the live dashboard is told when a session changes.

The broadcast view, after group-sending a batch of a session's events, sends one
``dashboard.summary`` to ``DASHBOARD_GROUP``: the session's purpose and creator,
who sent each new event and at what visibility, and the session's tally: for each
(visibility, sender, sender type), how many messages and the newest one's time.
No message content ever goes to the dashboard group. A session closed, reopened or
renamed by staff sends ``dashboard.state`` (``state``), which every viewer receives.

``summary_frame`` turns that into what one viewer may receive, through the one
visibility rule: the count and last activity of the messages it may see, and the
senders of those. A batch with nothing the viewer may see gives it no frame, so
a session holding only what it may not see never shows up live. The first render
(``realtime.views.pages.dashboard``) counts by the same rule.
"""

import collections
from datetime import datetime

from channels.db import database_sync_to_async
from django.db.models import Count, Max

from realtime.models import Message
from realtime.timestamps import isoformat
from realtime.visibility import Viewer, can_see

DASHBOARD_GROUP = "dashboard"
PURPOSE_CHARS = 200
KNOWN_TALLIES = 10_000

# session id -> (last seq counted, {(visibility, sender, sender_type): [count, newest timestamp]}), newest last.
_tallies = collections.OrderedDict()


def _remember(session_id, last_seq, tally):
    _tallies[session_id] = (last_seq, tally)
    _tallies.move_to_end(session_id)
    if len(_tallies) > KNOWN_TALLIES:
        _tallies.popitem(last=False)


def _stamp(value):
    """A time as fixed-width ISO 8601 UTC text, so that the newest is the greatest string."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return isoformat(value)


def _counted_on(known, events):
    """``known`` with ``events`` added; None when an event's time does not parse."""
    counted = {key: list(value) for key, value in known.items()}
    try:
        for event in events:
            data = event["data"]
            entry = counted.setdefault((data["visibility"], data["sender"], data["sender_type"]), [0, ""])
            entry[0] += 1
            entry[1] = max(entry[1], _stamp(data["timestamp"]))
    except ValueError:
        return None
    return counted


@database_sync_to_async  # stale connections closed around it: the broadcast door does no other hygiene
def _read_tally(session_id, upto):
    """The tally of the session's messages with seq up to ``upto``, from the database."""
    rows = (
        Message.objects.filter(session_id=session_id, seq__lte=upto)
        .order_by()
        .values("visibility", "sender", "sender_type")
        .annotate(count=Count("id"), newest=Max("timestamp"))
    )
    return {(row["visibility"], row["sender"], row["sender_type"]): [row["count"], _stamp(row["newest"])]
            for row in rows}


async def tally(session_id, events):
    """The session's tally up to the newest of ``events`` (sorted by seq).

    Counted on from the last batch this process delivered when ``events`` follow it
    seq for seq, so a steady stream costs no query; after a gap (events another
    process delivered, or dropped ones) it is read once from the database. Every
    seq up to the newest event is committed: seqs are assigned in commit order.
    """
    newest = events[-1]["seq"]
    known_seq, known = _tallies.get(session_id, (None, None))
    if known is not None and newest <= known_seq:
        _tallies.move_to_end(session_id)
        return known  # a batch sent again: the tally already counts it
    counted = None
    seqs = [event["seq"] for event in events]  # lengths first: a far jump must not build a list as long as the gap
    if known is not None and newest - known_seq == len(seqs) and seqs == list(range(known_seq + 1, newest + 1)):
        counted = _counted_on(known, events)
    if counted is None:
        counted = await _read_tally(session_id, newest)
    _remember(session_id, newest, counted)
    return counted


def summary(session, events, counted):
    """The ``dashboard.summary`` channel-layer message for ``events`` (seq order) of ``session``.

    ``session``: its id, purpose and creator; ``counted``: its ``tally``.
    """
    senders = {}
    for event in events:
        data = event["data"]
        senders[(data["sender"], data["sender_type"], data["visibility"])] = None
    return {
        "type": "dashboard.summary",
        "session": {
            "id": session["id"],
            "purpose": session["purpose"][:PURPOSE_CHARS],
            "created_by": session["created_by"],
        },
        "senders": [list(key) for key in senders],
        "tally": [[*key, count, newest] for key, (count, newest) in counted.items()],
    }


def state(event):
    """The ``dashboard.state`` channel-layer message for a ``session_state`` event: open or closed, and purpose."""
    return {"type": "dashboard.state", "session_id": event["session_id"], "is_active": event["data"]["is_active"],
            "purpose": event["data"]["purpose"][:PURPOSE_CHARS]}


def state_frame(message):
    """The ``session_state`` frame every dashboard viewer receives for a ``dashboard.state``.

    No message is in it: the purpose and state are on the session's page for every signed-in user.
    """
    return {"type": "session_state", "session_id": message["session_id"], "is_active": message["is_active"],
            "purpose": message["purpose"]}


def summary_frame(viewer: Viewer, message):
    """The ``session_summary`` frame ``viewer`` receives for a ``dashboard.summary``, or None.

    None when the batch holds nothing ``viewer`` may see.
    """
    visible = []
    for sender, sender_type, visibility in message["senders"]:
        if can_see(viewer, visibility, sender, sender_type) and sender not in visible:
            visible.append(sender)
    if not visible:
        return None
    count, last_activity = 0, ""
    for visibility, sender, sender_type, messages, newest in message["tally"]:
        if can_see(viewer, visibility, sender, sender_type):
            count += messages
            last_activity = max(last_activity, newest)
    session = message["session"]
    return {
        "type": "session_summary",
        "session_id": session["id"],
        "purpose": session["purpose"],
        "created_by": session["created_by"],
        "message_count": count,
        "last_activity": last_activity,
        "senders": visible,
    }
