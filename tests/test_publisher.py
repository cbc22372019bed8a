"""``realtime.publisher``, ``realtime.broadcast_client`` and ``realtime.announce``, in process."""

import asyncio
import threading
from datetime import timedelta

import httpx
import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from realtime import announce, operations, publish, publisher, strategies
from realtime.broadcast_client import REJECTED, RETRY, SENT, BroadcastClient, Result, hint
from realtime.models import Message, Session
from realtime.strategies import Strategy
from tests.scripted_door import DROP, scripted_door

pytestmark = pytest.mark.django_db(transaction=True)


def event(session_id, seq):
    return {"type": "new_message", "session_id": session_id, "seq": seq, "data": {"content": f"#{seq}"}}


class Accepting(Strategy):
    """A strategy that accepts everything at once and records what it was given."""

    via = target = "test"

    def __init__(self):
        self.sent = []

    async def send(self, session_id, events):
        self.sent.append((session_id, [e["seq"] for e in events]))
        return Result(SENT)

    def send_sync(self, session_id, events):
        self.sent.append((session_id, [e["seq"] for e in events]))
        return Result(SENT)

    async def close(self):
        pass


async def until(condition, within=5.0):
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


def stored(session, content="hello"):
    return operations.add_message(session.id, sender="a", sender_type="claude", content=content)


@pytest.fixture
def published(monkeypatch):
    """What this process's publisher is handed, instead of sending it."""
    handed = []
    monkeypatch.setattr(publisher.get_publisher(), "publish", handed.append)
    return handed


# Each message published once, after its commit only


def test_each_message_is_published_once_after_its_commit(monkeypatch, published):
    """Alone, after its own transaction; in a caller's transaction, by one hook when that one commits."""
    registered = []
    on_commit = transaction.on_commit

    def counting(func, using=None, robust=False):
        registered.append(func)
        on_commit(func, using, robust)

    monkeypatch.setattr(transaction, "on_commit", counting)
    session = publish.create_session("hooks")
    stored(session)
    assert (len(registered), [e["seq"] for e in published]) == (0, [1])
    with transaction.atomic():
        publish.add_message(session.id, "from host code, in its transaction")
        assert (len(registered), len(published)) == (1, 1)
    assert [e["seq"] for e in published] == [1, 2]


def test_nothing_is_published_for_a_rolled_back_transaction(published):
    session = publish.create_session("rollback")
    with pytest.raises(RuntimeError), transaction.atomic():
        stored(session, "never")
        raise RuntimeError("undo")
    assert published == []
    stored(session, "kept")
    assert [e["data"]["content"] for e in published] == ["kept"]


def test_host_receivers_still_get_message_stored(published):
    from realtime.signals import message_stored

    heard = []

    def receiver(sender, event, **kwargs):
        heard.append(event["seq"])

    message_stored.connect(receiver)
    try:
        stored(publish.create_session("signal"))
    finally:
        message_stored.disconnect(receiver)
    assert heard == [1] and [e["seq"] for e in published] == [1]


# Strategy selection


@pytest.mark.parametrize(
    ("via", "backend", "strategy"),
    [
        ("auto", "channels.layers.InMemoryChannelLayer", strategies.HttpStrategy),
        ("auto", "channels_redis.pubsub.RedisPubSubChannelLayer", strategies.ChannelLayerStrategy),
        ("http", "channels_redis.pubsub.RedisPubSubChannelLayer", strategies.HttpStrategy),
        ("channel_layer", "channels.layers.InMemoryChannelLayer", strategies.ChannelLayerStrategy),
    ],
)
def test_one_setting_chooses_one_strategy(settings, via, backend, strategy):
    settings.SCS_PUBLISH_VIA = via
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": backend}}
    assert type(publisher.get_publisher().strategy) is strategy


async def test_in_daphne_the_publisher_runs_on_its_loop_through_its_own_channel_layer(settings):
    settings.SCS_PUBLISH_VIA = "http"
    settings.SCS_ANNOUNCE_SWEEP_INTERVAL = 60
    running = publisher.get_publisher()
    try:
        publisher.start_in_daphne()
        assert running.running and running.strategy.via == "channel_layer" and running.stats()["sweeping"]
        publisher.start_in_daphne()  # a second connection changes nothing
        assert publisher.get_publisher() is running
    finally:
        await running.stop()


def test_with_sweeping_off_daphne_starts_no_publisher_loop(settings):
    settings.SCS_ANNOUNCE_SWEEP_INTERVAL = 0
    publisher.start_in_daphne()
    assert not publisher.get_publisher().running


def test_a_slow_synchronous_send_does_not_hold_up_the_processs_other_writers(monkeypatch):
    """The hook frees the writer turn (SQLite's one-writer lock) before it sends."""
    sending, release = threading.Event(), threading.Event()

    class Slow(Accepting):
        def send_sync(self, session_id, events):
            if events[0]["seq"] == 1:  # the first message's send hangs until released
                sending.set()
                release.wait(10)
            return super().send_sync(session_id, events)

    slow = Slow()
    monkeypatch.setattr(publisher.get_publisher(), "strategy", slow)
    session = publish.create_session("slow send")
    first = threading.Thread(target=lambda: (stored(session, "first"), connection.close()))
    first.start()
    try:
        assert sending.wait(10), "the first message was never sent"
        second = threading.Thread(target=lambda: (stored(session, "second"), connection.close()))
        second.start()
        second.join(5)
        assert not second.is_alive(), "the second writer waited for the first one's send"
    finally:
        release.set()
        first.join(10)
        second.join(10)
    assert sorted(seq for _, seqs in slow.sent for seq in seqs) == [1, 2]


# The synchronous path marks at once; the queued one batches its marks


def test_the_synchronous_path_marks_the_message_announced_at_once(settings):
    settings.SCS_PUBLISH_VIA = "channel_layer"
    session = publish.create_session("sync")
    publish.add_message(session.id, "one")
    publish.add_message(session.id, "two")
    session.refresh_from_db()
    assert (session.last_seq, session.announced_seq) == (2, 2)


def test_a_refused_synchronous_send_leaves_the_message_unannounced(settings, caplog):
    settings.SCS_PUBLISH_VIA = "http"
    settings.SCS_BROADCAST_URL = "http://127.0.0.1:9/agents"  # nothing listens on the discard port
    session = publish.create_session("refused")
    publish.add_message(session.id, "lost in transit")
    session.refresh_from_db()
    assert (session.last_seq, session.announced_seq) == (1, 0)
    assert "stored but not published" in caplog.text and "SCS_BROADCAST_URL" in caplog.text


async def test_the_queued_path_sends_in_order_per_session_and_batches_its_marks():
    strategy, marks = Accepting(), []
    running = publisher.Publisher(strategy, mark=marks.append, sweep=None)
    await running.start()
    try:
        for seq in range(1, 31):
            running.publish(event("session_00000000000000a1", seq))
            if seq <= 20:
                running.publish(event("session_00000000000000b2", seq))
        await until(lambda: not running.queue and not running.inflight and not running._marks and marks)
    finally:
        await running.stop()
    for session_id, count in (("session_00000000000000a1", 30), ("session_00000000000000b2", 20)):
        assert [seq for s, seqs in strategy.sent if s == session_id for seq in seqs] == list(range(1, count + 1))
    # Fifty events, a handful of mark calls (one per MARK_INTERVAL), each one cursor per session.
    assert 1 <= len(marks) <= 2 and len(strategy.sent) >= 2
    merged = {}
    for cursors in marks:
        for session_id, seq in cursors.items():
            merged[session_id] = max(seq, merged.get(session_id, 0))
    assert merged == {"session_00000000000000a1": 30, "session_00000000000000b2": 20}


async def test_an_overflowing_queue_drops_the_oldest_and_counts_them():
    class Stuck(Accepting):
        async def send(self, session_id, events):
            await asyncio.sleep(3600)

    running = publisher.Publisher(Stuck(), max_queue=2, mark=None, sweep=None)
    await running.start()
    try:
        running.publish(event("session_00000000000000a1", 1))
        await until(lambda: running.inflight)
        for seq in range(2, 6):
            running.publish(event("session_00000000000000a1", seq))
        assert running.stats()["dropped"] == 2 and [e["seq"] for e in running.queue] == [4, 5]
    finally:
        await running.stop(flush_timeout=0)


def test_mark_is_one_update_that_never_moves_a_cursor_back_nor_touches_activity(django_assert_num_queries):
    first, second = publish.create_session("one"), publish.create_session("two")
    for session in (first, second):
        for _ in range(3):
            stored(session)
    Session.objects.filter(pk=second.pk).update(announced_seq=3)
    before = {s.pk: s.updated_at for s in Session.objects.all()}
    with django_assert_num_queries(1):
        assert announce.mark({first.id: 2, second.id: 1}) == 1
    cursors = dict(Session.objects.values_list("id", "announced_seq"))
    assert cursors == {first.id: 2, second.id: 3}
    assert {s.pk: s.updated_at for s in Session.objects.all()} == before


# The sweep


def unannounced_sessions(count, quiet_for=60):
    """``count`` sessions of two messages each, never announced, quiet for ``quiet_for`` seconds."""
    sessions = [Session(purpose=f"quiet {n}", created_by="t", last_seq=2) for n in range(count)]
    Session.objects.bulk_create(sessions)
    Message.objects.bulk_create([Message(session=s, seq=seq, sender="a", sender_type="t", content=f"{s.pk} {seq}")
                                 for s in sessions for seq in (1, 2)])
    Session.objects.update(updated_at=timezone.now() - timedelta(seconds=quiet_for))
    return sessions


def test_a_sweep_is_two_bounded_queries_and_announces_each_sessions_newest_message():
    unannounced_sessions(150)
    with CaptureQueriesContext(connection) as queries:
        events = announce.sweep(grace=2, limit=100)
    assert len(queries) == 2
    assert "LIMIT 100" in queries[0]["sql"] and "announced_seq" in queries[0]["sql"]
    assert len(events) == 100 and {e["seq"] for e in events} == {2}
    assert all(e["data"]["content"] == f"{e['session_id']} 2" for e in events)


def test_the_sweep_reads_the_partial_index_not_the_table():
    sql, params = announce.unannounced_query(grace=2, limit=100).query.sql_with_params()
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
            plan = " ".join(str(row) for row in cursor.fetchall())
        else:
            cursor.execute("SET enable_seqscan = off")
            cursor.execute(f"EXPLAIN {sql}", params)
            plan = " ".join(row[0] for row in cursor.fetchall())
    assert "session_unannounced" in plan, plan


def test_a_sweep_leaves_sessions_within_the_grace_and_those_announced_alone():
    unannounced_sessions(3, quiet_for=0)
    assert announce.sweep(grace=30) == []
    Session.objects.update(updated_at=timezone.now() - timedelta(seconds=60), announced_seq=2)
    assert announce.sweep(grace=30) == []


def test_a_session_whose_newest_message_is_gone_is_marked_not_announced():
    [session] = unannounced_sessions(1)
    Message.objects.filter(session=session, seq=2).delete()
    assert announce.sweep(grace=2) == []
    session.refresh_from_db()
    assert session.announced_seq == 2


async def test_the_sweeper_announces_what_was_never_sent_then_marks_it():
    from channels.db import database_sync_to_async

    [session] = await database_sync_to_async(unannounced_sessions)(1)
    strategy = Accepting()
    running = publisher.Publisher(strategy, sweep_interval=0.05, grace=2)
    await running.start()
    try:
        await until(lambda: strategy.sent)

        async def announced():
            return (await Session.objects.aget(pk=session.pk)).announced_seq

        deadline = asyncio.get_running_loop().time() + 5
        while await announced() != 2:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.05)
    finally:
        await running.stop()
    assert strategy.sent[0] == (session.pk, [2]) and running.stats()["swept"] >= 1


# The HTTP client


def mock(*answers):
    """A transport answering each request with the next of ``answers`` (a status, or an exception to raise)."""
    seen = []

    def handler(request):
        seen.append(str(request.url))
        answer = answers[min(len(seen), len(answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return httpx.Response(answer, text="" if answer != 404 else '{"code": "SESSION_NOT_FOUND"}')

    return handler, seen


async def test_the_async_client_makes_one_attempt_and_fails_over_to_the_next_daphne():
    batch = [("session_00000000000000a1", [event("session_00000000000000a1", 1)])]
    async with scripted_door(DROP, 202) as (first, seen_first), scripted_door(503) as (second, seen_second):
        client = BroadcastClient(f"{first}, {second}/agents/", "s")
        results = [(await client.send_many(batch))[0] for _ in range(3)]
        await client.aclose()
    assert [r.outcome for r in results] == [RETRY, RETRY, SENT]
    assert [path for path, _ in seen_first] == ["/broadcast/", "/broadcast/"]
    assert [path for path, _ in seen_second] == ["/agents/broadcast/"]
    assert f"posting to {first}/broadcast/" in results[0].error
    assert "SCS_BROADCAST_URL" in results[0].hint
    assert f"HTTP 503 from {second}/agents/broadcast/" in results[1].error


def test_the_sync_client_tries_each_daphne_once_and_stays_with_the_one_that_accepts():
    handler, seen = mock(500, 202, 202)
    client = BroadcastClient("http://a:1,http://b:2", "s")
    client._sync = httpx.Client(transport=httpx.MockTransport(handler))
    assert client.send_sync("session_00000000000000a1", [event("session_00000000000000a1", 1)]).outcome == SENT
    assert client.send_sync("session_00000000000000a1", [event("session_00000000000000a1", 2)]).outcome == SENT
    assert [url.split("/broadcast")[0] for url in seen] == ["http://a:1", "http://b:2", "http://b:2"]


def test_a_refusal_is_final_and_says_what_to_check():
    handler, seen = mock(403)
    client = BroadcastClient("http://a:1,http://b:2", "s")
    client._sync = httpx.Client(transport=httpx.MockTransport(handler))
    result = client.send_sync("session_00000000000000a1", [event("session_00000000000000a1", 1)])
    assert result.outcome == REJECTED and len(seen) == 1 and "SCS_BROADCAST_SECRET" in result.hint
    assert "prefix" in hint(404) and "DATABASE_URL" in hint(404, '{"code": "SESSION_NOT_FOUND"}')
