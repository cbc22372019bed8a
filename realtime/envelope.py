"""The event envelope: the body the publisher POSTs and every frame a browser receives.

``{"type": "new_message", "session_id": ..., "seq": N, "data": {...}}``, and, when staff close,
reopen or rename a session, ``{"type": "session_state", "session_id": ..., "data": {"is_active": …,
"purpose": …}}`` (no seq: it is not a message).
"""

import json
import re
from datetime import datetime

from realtime.models import Visibility
from realtime.timestamps import isoformat

NEW_MESSAGE = "new_message"
SESSION_STATE = "session_state"
STATE_FIELDS = frozenset({"type", "session_id", "data"})
STATE_DATA_FIELDS = frozenset({"is_active", "purpose"})
EVENT_FIELDS = frozenset({"type", "session_id", "seq", "data"})
DATA_FIELDS = frozenset(
    {"id", "sender", "sender_type", "content", "visibility", "metadata", "parent_message_id", "timestamp"}
)
MAX_ID = 2**63 - 1  # seqs and ids are bigints
TIMESTAMP_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})", re.ASCII)


def encode(frame):
    """A frame as the compact JSON text sent over the WebSocket."""
    return json.dumps(frame, separators=(",", ":"))


def message_data(message):
    """A Message as the ``data`` of an envelope (and as MCP tools return it)."""
    return {
        "id": message.id,
        "sender": message.sender,
        "sender_type": message.sender_type,
        "content": message.content,
        "visibility": message.visibility,
        "metadata": message.metadata,
        "parent_message_id": message.parent_id,
        "timestamp": isoformat(message.timestamp),
    }


def message_event(message):
    return {"type": NEW_MESSAGE, "session_id": message.session_id, "seq": message.seq, "data": message_data(message)}


def state_event(session):
    """A Session's open/closed state and purpose as a ``session_state`` event."""
    return {"type": SESSION_STATE, "session_id": session.id,
            "data": {"is_active": session.is_active, "purpose": session.purpose}}


def _is_id(value):
    """A positive integer that fits the database's bigint (seqs, message ids)."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_ID


def _is_timestamp(value):
    if not isinstance(value, str) or not TIMESTAMP_RE.fullmatch(value):
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:  # well-formed but impossible, e.g. month 13
        return False
    return True


def validate_event(event, session_id):
    """Return an error string when ``event`` is not a well-formed envelope for ``session_id``.

    Exactly the envelope's fields, each of its type: what passes is sent to browsers as it is.
    """
    if not isinstance(event, dict):
        return "each event must be a JSON object"
    if event.get("type") == SESSION_STATE:
        return validate_state(event, session_id)
    if event.keys() != EVENT_FIELDS:
        return f"an event has exactly the fields {', '.join(sorted(EVENT_FIELDS))}"
    if event["type"] != NEW_MESSAGE:
        return f"event type must be {NEW_MESSAGE!r} or {SESSION_STATE!r}"
    if event["session_id"] != session_id:
        return "event session_id must match the URL's session id"
    if not _is_id(event["seq"]):
        return f"event seq must be an integer from 1 to {MAX_ID}"
    data = event["data"]
    if not isinstance(data, dict) or data.keys() != DATA_FIELDS:
        return f"event data must be an object with exactly {', '.join(sorted(DATA_FIELDS))}"
    if not _is_id(data["id"]):
        return f"event data.id must be an integer from 1 to {MAX_ID}"
    for field in ("sender", "sender_type", "content"):
        if not isinstance(data[field], str):
            return f"event data.{field} must be a string"
    if not isinstance(data["visibility"], str) or data["visibility"] not in Visibility.values:
        return f"event data.visibility must be one of {', '.join(Visibility.values)}"
    if not isinstance(data["metadata"], dict):
        return "event data.metadata must be an object"
    if data["parent_message_id"] is not None and not _is_id(data["parent_message_id"]):
        return "event data.parent_message_id must be null or a message id"
    if not _is_timestamp(data["timestamp"]):
        return "event data.timestamp must be an ISO 8601 date-time with a zone, e.g. 2026-05-01T14:00:00.000000Z"
    return None


def validate_state(event, session_id):
    """``validate_event`` for a ``session_state`` event."""
    if event.keys() != STATE_FIELDS:
        return f"a {SESSION_STATE} event has exactly the fields {', '.join(sorted(STATE_FIELDS))}"
    if event["session_id"] != session_id:
        return "event session_id must match the URL's session id"
    data = event["data"]
    if not isinstance(data, dict) or data.keys() != STATE_DATA_FIELDS:
        return f"{SESSION_STATE} data must be an object with exactly {', '.join(sorted(STATE_DATA_FIELDS))}"
    if not isinstance(data["is_active"], bool) or not isinstance(data["purpose"], str):
        return f"{SESSION_STATE} data.is_active must be a boolean and data.purpose a string"
    return None


def message_record(message):
    """A Message as MCP tools and resources return it: the envelope data plus its seq."""
    return {**message_data(message), "seq": message.seq}
