"""The event envelope: the body the publisher POSTs and every frame a browser receives.

``{"type": "new_message", "session_id": ..., "seq": N, "data": {...}}``
"""

import json

NEW_MESSAGE = "new_message"
DATA_FIELDS = frozenset(
    {"id", "sender", "sender_type", "content", "visibility", "metadata", "parent_message_id", "timestamp"}
)


def encode(frame):
    """A frame as the compact JSON text sent over the WebSocket."""
    return json.dumps(frame, separators=(",", ":"))


def isoformat(dt):
    return dt.isoformat().replace("+00:00", "Z")


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


def validate_event(event, session_id):
    """Return an error string when ``event`` is not a well-formed envelope for ``session_id``."""
    if not isinstance(event, dict):
        return "each event must be a JSON object"
    if event.get("type") != NEW_MESSAGE:
        return f"event type must be {NEW_MESSAGE!r}"
    if event.get("session_id") != session_id:
        return "event session_id must match the URL's session id"
    seq = event.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        return "event seq must be a positive integer"
    data = event.get("data")
    if not isinstance(data, dict) or not DATA_FIELDS <= data.keys():
        return f"event data must be an object with {', '.join(sorted(DATA_FIELDS))}"
    for field in ("sender", "sender_type", "content", "visibility", "timestamp"):
        if not isinstance(data[field], str):
            return f"event data.{field} must be a string"
    if not isinstance(data["metadata"], dict):
        return "event data.metadata must be an object"
    return None


def message_record(message):
    """A Message as MCP tools and resources return it: the envelope data plus its seq."""
    return {**message_data(message), "seq": message.seq}
