"""A session as Markdown or JSON: the download on its page and ``manage.py export_session``.

``export(session, fmt, viewer)`` yields the text in pieces, reading the messages in seq order a
batch at a time, so a long session is never held in memory whole. ``viewer`` None exports every
message (the command, for operators); a ``Viewer`` gets exactly what it may see, through the one
visibility rule (``operations.visible_messages``) the page and the WebSocket use.
"""

import json

from django.utils import timezone

from realtime.envelope import message_record
from realtime.models import Message
from realtime.operations import visible_messages
from realtime.timestamps import isoformat

FORMATS = {"md": "text/markdown; charset=utf-8", "json": "application/json"}
BATCH = 500


def messages(session, viewer):
    """The session's messages ``viewer`` may see (all when None), in seq order, up to its last committed seq."""
    if viewer is None:
        queryset = Message.objects.filter(session_id=session.id).order_by("seq")
    else:
        queryset = visible_messages(viewer, session.id)
    return queryset.filter(seq__lte=session.last_seq).iterator(chunk_size=BATCH)


def session_record(session):
    return {
        "id": session.id,
        "purpose": session.purpose,
        "created_by": session.created_by,
        "created_at": isoformat(session.created_at),
        "is_active": session.is_active,
        "metadata": session.metadata,
    }


def export(session, fmt, viewer=None):
    """The export of ``session`` in ``fmt`` (a key of ``FORMATS``), as an iterator of text pieces."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    return (as_markdown if fmt == "md" else as_json)(session, viewer)


def seen_as(viewer):
    return "everything (operator export)" if viewer is None else f"what {viewer.id} may see"


def as_json(session, viewer):
    head = {"session": session_record(session), "exported_at": isoformat(timezone.now()), "contains": seen_as(viewer)}
    yield json.dumps(head, ensure_ascii=False, indent=1)[:-2] + ',\n "messages": ['
    for n, message in enumerate(messages(session, viewer)):
        yield ("," if n else "") + "\n  " + json.dumps(message_record(message), ensure_ascii=False)
    yield "\n ]\n}\n"


def one_line(text):
    return " ".join(str(text).split())


def json_block(value):
    return "\n```json\n" + json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True) + "\n```\n"


def as_markdown(session, viewer):
    yield f"# {one_line(session.purpose)}\n\n"
    yield f"- Session: `{session.id}`\n"
    yield f"- Created by: {one_line(session.created_by)}, {isoformat(session.created_at)}\n"
    yield f"- State: {'open' if session.is_active else 'closed'}\n"
    yield f"- Exported: {isoformat(timezone.now())}, {seen_as(viewer)}\n"
    if session.metadata:
        yield "\nSession metadata:\n" + json_block(session.metadata)
    seqs = {}  # message id -> seq, for the messages written so far
    for message in messages(session, viewer):
        seqs[message.id] = message.seq
        head = (f"\n---\n\n### #{message.seq} · {one_line(message.sender)} ({one_line(message.sender_type)}) · "
                f"{message.visibility} · {isoformat(message.timestamp)}\n\n")
        if message.parent_id is not None:
            parent = seqs.get(message.parent_id)
            head += f"Reply to #{parent}\n\n" if parent else "Reply to an earlier message\n\n"
        yield head + message.content.rstrip("\n") + "\n"
        if message.metadata:
            yield json_block(message.metadata)
