"""Memory writes leave through the one publisher as memory events; the staff pages' filters, as query and predicate."""

import itertools
import json
from datetime import timedelta

import pytest
from django.utils import timezone

from realtime import memory, operations, publisher
from realtime.broadcast_client import SENT, Result
from realtime.envelope import MEMORY_TARGET, memory_record
from realtime.errors import OperationError
from realtime.live.broadcast import parse_events
from realtime.memory_filter import MemoryFilter
from realtime.models import MemoryEntry
from realtime.strategies import Strategy

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def published(monkeypatch):
    """What this process's publisher is handed, instead of sending it."""
    handed = []
    monkeypatch.setattr(publisher.get_publisher(), "publish", handed.append)
    return handed


def test_set_overwrite_and_delete_are_published_after_commit_and_nothing_else(published):
    session = operations.create_session("memory", "ada")
    first = memory.set_memory("ada", "plan", {"step": 1}, session_id=session.id, expires_in=60)
    memory.set_memory("ada", "plan", {"step": 2}, session_id=session.id)
    with pytest.raises(OperationError):
        memory.set_memory("ada", "plan", 3, session_id=session.id, overwrite=False)  # refused: rolled back
    with pytest.raises(OperationError):
        memory.delete_memory("ada", "absent")
    deleted = memory.delete_memory("ada", "plan", session_id=session.id)
    assert deleted["key"] == "plan" and not MemoryEntry.objects.exists()
    assert [(e["type"], e["action"], e["entry"]["id"]) for e in published] == [
        ("memory", "set", first.pk), ("memory", "set", first.pk), ("memory", "delete", first.pk)]
    assert [e["entry"]["value"] for e in published] == [{"step": 1}, {"step": 2}, {"step": 2}]
    assert published[0]["entry"]["expires_at"] is not None and published[1]["entry"]["expires_at"] is None
    assert all(e["entry"]["session_id"] == session.id for e in published)


class Accepting(Strategy):
    via = target = "test"

    def __init__(self):
        self.sent = []

    async def send(self, target, events):
        self.sent.append((target, [e["type"] for e in events]))
        return Result(SENT)

    async def close(self):
        pass


async def test_the_publisher_batches_memory_events_apart_and_marks_only_messages():
    marked = []
    strategy = Accepting()
    sender = publisher.Publisher(strategy, sweep_interval=0, mark=lambda cursors: marked.append(dict(cursors)))
    sender.begin()
    message = {"type": "new_message", "session_id": "session_0123456789abcdef", "seq": 4, "data": {}}
    entry = {"id": 1, "agent_id": "ada", "key": "k", "session_id": None, "value": 1, "metadata": {},
             "updated_at": "2026-05-01T14:00:00.000000Z", "expires_at": None}
    for event in (message, {"type": "memory", "action": "set", "entry": entry}):
        sender.publish(event)
    await sender.stop()
    assert sorted(strategy.sent) == sorted([(MEMORY_TARGET, ["memory"]), (message["session_id"], ["new_message"])])
    assert marked == [{message["session_id"]: 4}]


def test_the_broadcast_door_takes_memory_events_only_at_its_memory_path():
    session = operations.create_session("memory", "ada")
    event = {"type": "memory", "action": "delete", "entry": memory_record(memory.set_memory("ada", "k", 1))}
    body = json.dumps({"events": [event]}).encode()
    assert parse_events(body, MEMORY_TARGET) == ([event], None)
    assert parse_events(body, session.id)[1].status == 400
    _, refusal = parse_events(json.dumps({**event, "action": "drop"}).encode(), MEMORY_TARGET)
    assert refusal.status == 400 and "action" in refusal.body["error"]


def test_a_memory_filter_as_a_query_and_as_a_predicate_agree():
    now = timezone.now()
    sessions = [operations.create_session(f"s{n}", "ada").id for n in range(2)]
    for agent, key, session_id, ttl in itertools.product(["ada", "Bob"], ["plan", "Notes:x"], [None, *sessions],
                                                         [None, -60, 600]):
        entry = MemoryEntry.objects.create(agent_id=agent, key=f"{key}{ttl}", session_id=session_id, value=1)
        if ttl is not None:
            MemoryEntry.objects.filter(pk=entry.pk).update(expires_at=now + timedelta(seconds=ttl))
    records = [memory_record(entry) for entry in MemoryEntry.objects.all()]
    filters = [MemoryFilter(agent=agent, scope=scope, query=query, show_expired=expired, session_id=session_id)
               for agent, scope, query, expired, session_id in itertools.product(
                   ["", "ada"], ["", "global", "session"], ["", "NOTES", sessions[0][-6:]], [False, True],
                   ["", sessions[1]])]
    for chosen in filters:
        by_query = set(MemoryEntry.objects.filter(chosen.q(now)).values_list("pk", flat=True))
        assert by_query == {r["id"] for r in records if chosen.matches(r, now)}, chosen
    assert MemoryFilter.from_params({"agent": ["ada"], "scope": ["bogus"], "q": [" x "], "expired": ["1"]}) == \
        MemoryFilter(agent="ada", scope="", query="x", show_expired=True)


@pytest.mark.usefixtures("fresh_channel_layer")
async def test_the_channel_layer_strategy_hands_memory_to_the_staff_groups_rendered_once():
    from channels.layers import get_channel_layer

    from realtime.live.memory import MEMORY_GROUP, memory_group
    from realtime.strategies import ChannelLayerStrategy

    layer = get_channel_layer()
    page, tab = await layer.new_channel(), await layer.new_channel()
    session_id = "session_0123456789abcdef"
    await layer.group_add(MEMORY_GROUP, page)
    await layer.group_add(memory_group(session_id), tab)
    entry = {"id": 3, "agent_id": "ada", "key": "plan", "session_id": session_id, "value": {"v": 1}, "metadata": {},
             "updated_at": "2026-05-01T14:00:00.000000Z", "expires_at": None}
    events = [{"type": "memory", "action": "set", "entry": entry},
              {"type": "memory", "action": "delete", "entry": {**entry, "session_id": None, "id": 4}}]
    assert (await ChannelLayerStrategy().send(MEMORY_TARGET, events)).outcome == SENT
    everything, this_session = await layer.receive(page), await layer.receive(tab)
    assert everything["type"] == this_session["type"] == "memory.events"
    assert [json.loads(text)["id"] for text in everything["texts"]] == [3, 4]
    assert [json.loads(text)["id"] for text in this_session["texts"]] == [3]  # the global entry is not the session's
    assert this_session["texts"][0] == everything["texts"][0]  # the same rendered row, built once
    row = json.loads(everything["texts"][0])
    assert row["html"].startswith('<tr id="memory-3" class="memory-entry"') and "&quot;v&quot;: 1" in row["html"]
    assert json.loads(everything["texts"][1]) == {"type": "memory", "action": "delete", "id": 4, "html": None}
