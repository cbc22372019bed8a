"""``operations.add_message`` numbering: one seq per message, no gaps, across threads."""

import threading

import pytest
from django.db import close_old_connections

from realtime import operations
from realtime.errors import OperationError
from realtime.models import Message, Session

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
