"""Memory entries, live, for staff only: the memory page's socket and the session page's memory tab.

A memory event (``realtime.envelope``: an entry set or deleted) is rendered once
(``realtime.fragments.memory_row_html``) and sent to ``MEMORY_GROUP``, which only
``realtime.live.memory_consumer.MemoryConsumer``s of staff users join, and, for an entry of a session, to that
session's ``memory_group``, which a ``SessionConsumer`` joins only for a staff user
(``joins_memory``). No agent connection ever joins either, so memory values never
reach an agent or a non-staff page. Each frame is
``{"type": "memory", "action": "set" | "delete", "id": N, "html": "<tr…>" | null}``.

Expiry is shown by the pages themselves: a row carries ``data-expires-at`` and
``memory.js`` removes it at that time (no event is sent when an entry lapses).
Changes made while a page was disconnected are not replayed; a reload shows them.
"""

from channels.layers import get_channel_layer

from realtime.envelope import encode
from realtime.fragments import memory_row_html

MEMORY_GROUP = "memory"


def memory_group(session_id):
    """The group of the staff viewers of one session's memory tab."""
    return f"memory.{session_id}"


def joins_memory(viewer):
    """Only staff users see memory: never an agent (even an admin one), never another user."""
    return viewer is not None and viewer.kind == "user" and viewer.is_admin


def frame(event):
    record = event["entry"]
    html = memory_row_html(record) if event["action"] == "set" else None
    return {"type": "memory", "action": event["action"], "id": record["id"], "html": html}


async def deliver(events):
    layer = get_channel_layer()
    records = [event["entry"] for event in events]
    texts = [encode(frame(event)) for event in events]  # rendered once, for every staff page
    actions = [event["action"] for event in events]
    await layer.group_send(MEMORY_GROUP, {"type": "memory.events", "records": records, "actions": actions,
                                          "texts": texts})
    sessions = {}
    for record, action, text in zip(records, actions, texts, strict=True):
        if record["session_id"]:
            sessions.setdefault(record["session_id"], []).append((record, action, text))
    for session_id, items in sessions.items():
        records, actions, texts = (list(column) for column in zip(*items, strict=True))
        await layer.group_send(memory_group(session_id), {"type": "memory.events", "records": records,
                                                          "actions": actions, "texts": texts})
