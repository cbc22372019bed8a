"""The event envelopes: the bodies the publisher POSTs, and (for messages) every frame an agent receives.

``{"type": "new_message", "session_id": ..., "seq": N, "data": {...}}``: a stored message,
posted under its session (in a batch of ``/broadcast/``, or to ``/broadcast/<session_id>``).
Pages get it with its ``html`` added (``realtime.fragments.page_event``).

``{"type": "session_state", "session_id": ..., "data": {"is_active": …, "purpose": …}}``: staff
closed, reopened or renamed a session (no seq: it is not a message), posted to the session's door.

``{"type": "memory", "action": "set" | "delete", "entry": {...}}``: an agent's memory entry
written or deleted, posted under ``MEMORY_TARGET`` (a batch of ``/broadcast/``, or ``/broadcast/memory``).
It reaches staff pages only (``realtime.live.memory``), never an agent.
"""

import json
import re
from datetime import datetime

from realtime.models import Visibility, is_session_id
from realtime.timestamps import isoformat

NEW_MESSAGE = "new_message"
SESSION_STATE = "session_state"
STATE_FIELDS = frozenset({"type", "session_id", "data"})
STATE_DATA_FIELDS = frozenset({"is_active", "purpose"})
MEMORY = "memory"
MEMORY_TARGET = "memory"  # the publisher's batch key and the broadcast door's path for memory events
MEMORY_ACTIONS = ("set", "delete")
MEMORY_FIELDS = frozenset({"id", "agent_id", "key", "session_id", "value", "metadata", "updated_at", "expires_at"})
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


def target(event):
    """Where the publisher sends ``event``: its session's door, or ``MEMORY_TARGET``."""
    return MEMORY_TARGET if event.get("type") == MEMORY else event["session_id"]


def memory_record(entry):
    """A MemoryEntry as a memory event carries it: everything its row on a page shows."""
    return {
        "id": entry.pk, "agent_id": entry.agent_id, "key": entry.key, "session_id": entry.session_id,
        "value": entry.value, "metadata": entry.metadata, "updated_at": isoformat(entry.updated_at),
        "expires_at": isoformat(entry.expires_at),
    }


def memory_event(action, entry):
    return {"type": MEMORY, "action": action, "entry": memory_record(entry)}


def validate_memory_event(event):
    """Return an error string when ``event`` is not a well-formed memory event."""
    if not isinstance(event, dict) or event.keys() != {"type", "action", "entry"} or event["type"] != MEMORY:
        return "a memory event is an object with exactly the fields action, entry and type ('memory')"
    if event["action"] not in MEMORY_ACTIONS:
        return f"memory event action must be one of {', '.join(MEMORY_ACTIONS)}"
    entry = event["entry"]
    if not isinstance(entry, dict) or entry.keys() != MEMORY_FIELDS:
        return f"memory event entry must be an object with exactly {', '.join(sorted(MEMORY_FIELDS))}"
    if not _is_id(entry["id"]):
        return f"memory entry id must be an integer from 1 to {MAX_ID}"
    if not isinstance(entry["agent_id"], str) or not isinstance(entry["key"], str):
        return "memory entry agent_id and key must be strings"
    if entry["session_id"] is not None and not is_session_id(entry["session_id"]):
        return "memory entry session_id must be null or a session id"
    if not isinstance(entry["metadata"], dict):
        return "memory entry metadata must be an object"
    expires_at = entry["expires_at"]
    if not _is_timestamp(entry["updated_at"]) or not (expires_at is None or _is_timestamp(expires_at)):
        return "memory entry updated_at (and expires_at, unless null) must be ISO 8601 date-times with a zone"
    return None
