"""What the live dashboard is told when a session changes.

The broadcast view, after group-sending a batch of a session's events, sends one
``dashboard.summary`` to ``DASHBOARD_GROUP``: the session's purpose, creator,
message count and last activity, plus who sent each new event and at what
visibility. No message content ever goes to the dashboard group.
``summary_frame`` turns that into what one viewer may receive: senders of
messages the viewer may not see are left out.
"""

from realtime.visibility import Viewer, can_see

DASHBOARD_GROUP = "dashboard"
PURPOSE_CHARS = 200


def summary(session, events):
    """The ``dashboard.summary`` channel-layer message for ``events`` of ``session`` (id, purpose, created_by).

    The session's last seq and last activity are those of its newest event.
    """
    senders = {}
    for event in events:
        data = event["data"]
        key = (data["sender"], data["sender_type"], data["visibility"])
        senders[key] = None
    newest = max(events, key=lambda event: event["seq"])
    return {
        "type": "dashboard.summary",
        "session": {
            "id": session["id"],
            "purpose": session["purpose"][:PURPOSE_CHARS],
            "created_by": session["created_by"],
            "last_seq": newest["seq"],
            "last_activity": newest["data"]["timestamp"],
        },
        "senders": [list(key) for key in senders],
    }


def summary_frame(viewer: Viewer, message):
    """The ``session_summary`` frame ``viewer`` receives for a ``dashboard.summary``."""
    session = message["session"]
    visible = []
    for sender, sender_type, visibility in message["senders"]:
        if can_see(viewer, visibility, sender, sender_type) and sender not in visible:
            visible.append(sender)
    return {
        "type": "session_summary",
        "session_id": session["id"],
        "purpose": session["purpose"],
        "created_by": session["created_by"],
        "message_count": session["last_seq"],
        "last_seq": session["last_seq"],
        "last_activity": session["last_activity"],
        "senders": visible,
    }
