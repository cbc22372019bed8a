"""``operations.add_message`` numbering: one seq per message, no gaps, across threads."""

import logging
import threading

import pytest
from django.db import close_old_connections, connection
from django.test.utils import CaptureQueriesContext

from realtime import operations, publisher
from realtime.errors import OperationError
from realtime.group_commit import GroupCommit
from realtime.models import AuditEvent, Mention, Message, Session
from tests.helpers import until

pytestmark = pytest.mark.django_db(transaction=True)


def add(session_id, n=0, sender="writer"):
    return operations.add_message(session_id, sender=sender, sender_type="claude", content=f"message {n}")


def test_seqs_count_up_and_the_session_remembers_the_last():
    session = operations.create_session("numbering", "writer")
    before = session.updated_at
    messages = [add(session.id, n) for n in range(5)]
    assert [m.seq for m in messages] == [1, 2, 3, 4, 5]
    session.refresh_from_db()
    assert session.last_seq == 5
    # updated_at is the time the last message took its seq, just before it was stored.
    assert before < session.updated_at <= messages[-1].timestamp
    assert session.updated_at > messages[-2].timestamp


def test_a_closed_session_takes_no_message_and_keeps_its_seq():
    session = operations.create_session("closed", "writer")
    add(session.id)
    Session.objects.filter(pk=session.id).update(is_active=False)
    with pytest.raises(OperationError) as caught:
        add(session.id)
    assert caught.value.code == "SESSION_CLOSED"
    session.refresh_from_db()
    assert session.last_seq == 1
    assert Message.objects.filter(session=session).count() == 1


def test_an_unknown_session_is_not_found():
    with pytest.raises(OperationError) as caught:
        add("session_0123456789abcdef")
    assert caught.value.code == "SESSION_NOT_FOUND"


def test_writers_on_many_threads_get_every_seq_once():
    session = operations.create_session("threads", "writer")
    seqs, errors = [], []

    def write(n):
        try:
            for i in range(15):
                seqs.append(add(session.id, i, sender=f"writer-{n}").seq)
        except Exception as exc:  # reported below with the seqs
            errors.append(exc)
        finally:
            close_old_connections()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert sorted(seqs) == list(range(1, 91))
    assert sorted(Message.objects.filter(session=session).values_list("seq", flat=True)) == list(range(1, 91))


# Stored together: what this process's threads store at the same time shares one transaction


def new(session_id, content, *, parent=None, visibility="public", sender="writer"):
    return operations.NewMessage(session_id, sender, "claude", content, visibility, {}, parent)


def test_messages_stored_together_take_each_sessions_next_seqs_in_one_insert():
    one, two = (operations.create_session(purpose, "writer") for purpose in ("one", "two"))
    add(one.id)
    with CaptureQueriesContext(connection) as queries:
        stored = operations.store_messages([new(one.id, "a"), new(two.id, "b"), new(one.id, "c @reader")])
    assert [(m.session_id, m.seq, m.content) for m in stored] == [
        (one.id, 2, "a"), (two.id, 1, "b"), (one.id, 3, "c @reader")]
    rows = Message.objects.filter(pk__in=[m.pk for m in stored]).order_by("pk")
    assert [(m.session_id, m.seq, m.content) for m in rows] == [(m.session_id, m.seq, m.content) for m in stored]
    statements = [query["sql"] for query in queries.captured_queries]
    assert sum(sql.startswith('INSERT INTO "realtime_message"') for sql in statements) == 1
    assert sum(sql.startswith('UPDATE "realtime_session"') for sql in statements) == 2  # one per session
    assert list(Mention.objects.values_list("agent_id", "message_id")) == [("reader", stored[2].pk)]
    assert [Session.objects.get(pk=s.id).last_seq for s in (one, two)] == [3, 1]


def test_a_message_to_a_closed_session_fails_alone_and_the_others_are_stored():
    open_, closed = (operations.create_session(purpose, "writer") for purpose in ("open", "closed"))
    Session.objects.filter(pk=closed.id).update(is_active=False)
    first, refused, second, unknown = operations.store_messages(
        [new(open_.id, "1"), new(closed.id, "x"), new(open_.id, "2"), new("session_0123456789abcdef", "y")])
    assert (first.seq, second.seq) == (1, 2)
    assert (refused.code, unknown.code) == ("SESSION_CLOSED", "SESSION_NOT_FOUND")
    assert list(Message.objects.values_list("content", flat=True).order_by("seq")) == ["1", "2"]
    assert Session.objects.get(pk=closed.id).last_seq == 0


def test_a_reply_to_a_message_of_another_session_fails_alone():
    here, there = (operations.create_session(purpose, "writer") for purpose in ("here", "there"))
    parent = add(there.id)
    ok, refused, reply = operations.store_messages(
        [new(here.id, "a"), new(here.id, "b", parent=parent.pk), new(there.id, "c", parent=parent.pk)])
    assert refused.code == "PARENT_NOT_FOUND"
    assert (ok.seq, reply.seq, reply.parent_id) == (1, 2, parent.pk)


def test_admin_only_messages_stored_together_are_audited_each():
    session = operations.create_session("audited", "writer")
    stored = operations.store_messages([new(session.id, "a", visibility="admin_only"), new(session.id, "b")])
    assert list(AuditEvent.objects.filter(event_type="admin_only_message").values_list("detail", flat=True)) == [
        {"message_id": stored[0].pk}]


def test_writers_meanwhile_share_one_transaction_and_are_published_in_seq_order_once_committed(monkeypatch):
    """The first writer's transaction is held open; the six that come meanwhile are stored in the next one."""
    session = operations.create_session("together", "writer")
    published, batches = [], []
    def publish(event):  # outside any transaction, the row there
        stored = Message.objects.filter(session=session, seq=event["seq"]).exists()
        published.append((event["seq"], stored and not connection.in_atomic_block))

    monkeypatch.setattr(publisher.get_publisher(), "publish", publish)
    holding, release = threading.Event(), threading.Event()

    def held(batch):
        batches.append([n.content for n in batch])
        if len(batches) == 1:
            holding.set()
            assert release.wait(10)
        return operations.store_messages(batch)

    writes = GroupCommit(held, after_batch=operations.message_writes.after_batch)
    monkeypatch.setattr(operations, "message_writes", writes)
    results = {}

    def write(n):
        try:
            results[n] = add(session.id, n)
        finally:
            close_old_connections()

    threads = [threading.Thread(target=write, args=(0,))]
    threads[0].start()
    assert holding.wait(10)
    for n in range(1, 7):
        threads.append(threading.Thread(target=write, args=(n,)))
        threads[-1].start()
        until(lambda queued=n: len(writes._waiting) == queued, what=f"writer {n} waiting")
    release.set()
    for thread in threads:
        thread.join(10)
    assert batches == [["message 0"], ["message 1", "message 2", "message 3", "message 4", "message 5", "message 6"]]
    assert {n: message.seq for n, message in results.items()} == {n: n + 1 for n in range(7)}
    assert published == [(seq, True) for seq in range(1, 8)]  # each once, in order, after its commit


def test_mentions_stored_together_take_each_agents_next_positions_in_order():
    session = operations.create_session("mentions", "writer")
    operations.store_messages([new(session.id, "@bob first")])
    stored = operations.store_messages([new(session.id, "@carol @bob"), new(session.id, "@bob again @writer")])
    assert list(Mention.objects.order_by("agent_id", "seq").values_list("agent_id", "seq", "message_id")) == [
        ("bob", 1, Mention.objects.get(agent_id="bob", seq=1).message_id),
        ("bob", 2, stored[0].pk), ("bob", 3, stored[1].pk), ("carol", 1, stored[0].pk)]  # not the sender


def test_a_failed_commit_of_messages_stored_together_is_not_stored_again(monkeypatch):
    """The commit may have happened: each message's thread gets the error rather than a second copy."""
    from django.db import DatabaseError

    session = operations.create_session("commit", "writer")
    alone = []
    monkeypatch.setattr(operations, "_store_one", lambda new, **kwargs: alone.append(new))
    commit = connection.commit

    def failing():
        commit()
        raise DatabaseError("server closed the connection unexpectedly")

    monkeypatch.setattr(connection, "commit", failing)
    with pytest.raises(DatabaseError, match="closed the connection"):  # GroupCommit hands it to each thread
        operations.store_messages([new(session.id, "a"), new(session.id, "b")])
    assert alone == [] and Message.objects.filter(session=session).count() == 2


def test_a_host_receiver_may_store_a_reply_on_the_thread_that_stored_the_message(caplog):
    """message_stored comes on the storing thread, after the message was published: a reply there is stored
    and published next, in order."""
    from realtime.signals import message_stored

    session = operations.create_session("replies", "writer")
    published = []

    def reply(sender, event, **kwargs):
        if event["data"]["content"] == "question":
            operations.add_message(session.id, sender="bot", sender_type="bot", content="answer")

    message_stored.connect(reply)
    try:
        with caplog.at_level(logging.WARNING, logger="realtime.group_commit"), \
                pytest.MonkeyPatch.context() as patch:
            patch.setattr(publisher.get_publisher(), "publish", lambda event: published.append(event["seq"]))
            question = operations.add_message(session.id, sender="writer", sender_type="claude", content="question")
    finally:
        message_stored.disconnect(reply)
    assert question.seq == 1 and published == [1, 2]
    assert "goes ahead" not in caplog.text
