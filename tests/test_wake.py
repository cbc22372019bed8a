"""``realtime.wake`` (the hub), ``realtime.waiting`` (a cursor that waits) and ``realtime.mentions``, in process."""

import asyncio

import pytest
from asgiref.sync import sync_to_async

from realtime import mentions, operations, wake
from realtime.errors import ErrorCode, OperationError
from realtime.models import Visibility
from realtime.visibility import Viewer
from realtime.waiting import Follower

pytestmark = pytest.mark.django_db(transaction=True)

BOB = Viewer.for_agent("bob", "claude", ("read", "write"))
ADMIN = Viewer.for_agent("root", "admin", ("read", "write", "admin"))


@pytest.fixture(autouse=True)
def quiet_publisher(monkeypatch):
    from realtime import publisher

    monkeypatch.setattr(publisher.get_publisher(), "publish", lambda event: None)


def store(session_id, content, sender="alice", visibility=Visibility.PUBLIC, sender_type="claude", **kwargs):
    return operations.add_message(session_id, sender=sender, sender_type=sender_type, content=content,
                                  visibility=visibility, may_write_admin_only=True, **kwargs)


astore = sync_to_async(store, thread_sensitive=False)


@pytest.fixture
def session_id():
    return operations.create_session("waiting", "alice").id


async def follow(viewer, session_id, cursor=0, timeout=5, **kwargs):
    with wake.hub.session(session_id) as waiter:
        return await Follower(viewer, session_id, cursor, waiter, **kwargs).next(timeout)


async def test_messages_already_there_return_at_once(session_id):
    await astore(session_id, "one")
    await astore(session_id, "two")
    batch = await follow(BOB, session_id)
    assert [r["content"] for r in batch.records] == ["one", "two"]
    assert batch.last_seq == 2 and not batch.timed_out


async def test_a_waiter_wakes_on_a_message_stored_in_another_thread(session_id):
    with wake.hub.session(session_id) as waiter:
        follower = Follower(BOB, session_id, 0, waiter)
        waiting = asyncio.ensure_future(follower.next(10))
        await asyncio.sleep(0.1)
        assert not waiting.done()
        await astore(session_id, "hello")
        batch = await waiting
    assert [r["content"] for r in batch.records] == ["hello"] and batch.last_seq == 1
    assert batch.records[0]["seq"] == 1 and batch.records[0]["sender"] == "alice"


async def test_a_hidden_message_never_wakes_and_the_cursor_passes_it(session_id):
    with wake.hub.session(session_id) as waiter:
        follower = Follower(BOB, session_id, 0, waiter)
        waiting = asyncio.ensure_future(follower.next(0.5))
        await asyncio.sleep(0.05)
        await astore(session_id, "secret", visibility=Visibility.PRIVATE)
        await astore(session_id, "admins", visibility=Visibility.ADMIN_ONLY)
        batch = await waiting
    assert batch.timed_out and batch.records == [] and batch.last_seq == 2


async def test_an_admin_sees_what_others_may_not(session_id):
    await astore(session_id, "secret", visibility=Visibility.PRIVATE)
    await astore(session_id, "admins", visibility=Visibility.ADMIN_ONLY)
    batch = await follow(ADMIN, session_id)
    assert [r["content"] for r in batch.records] == ["secret", "admins"]


async def test_own_messages_are_passed_over_unless_asked_for(session_id):
    await astore(session_id, "mine", sender="bob")
    batch = await follow(BOB, session_id, timeout=0)
    assert batch.timed_out and batch.last_seq == 1
    batch = await follow(BOB, session_id, include_own=True, timeout=0)
    assert [r["content"] for r in batch.records] == ["mine"]


async def test_limit_stops_the_cursor_at_the_last_message_shown(session_id):
    for n in range(5):
        await astore(session_id, f"m{n}")
    batch = await follow(BOB, session_id, limit=2)
    assert [r["seq"] for r in batch.records] == [1, 2] and batch.last_seq == 2
    batch = await follow(BOB, session_id, batch.last_seq, limit=10)
    assert [r["seq"] for r in batch.records] == [3, 4, 5] and batch.last_seq == 5


async def test_a_gap_in_the_events_handed_over_is_read_from_the_database(session_id):
    with wake.hub.session(session_id) as waiter:
        follower = Follower(BOB, session_id, 0, waiter)
        assert (await follower.next(0)).timed_out
        stored = [await astore(session_id, f"m{n}") for n in range(3)]
        waiter.take()  # as if events 1 and 2 never reached this process
        wake.hub.notify([operations.message_event(stored[2])])
        batch = await follower.next(5)
    assert [r["content"] for r in batch.records] == ["m0", "m1", "m2"]


async def test_events_after_the_limit_are_kept_for_the_next_batch(session_id):
    with wake.hub.session(session_id) as waiter:
        follower = Follower(BOB, session_id, 0, waiter, limit=1)
        assert (await follower.next(0)).timed_out
        for n in range(3):
            await astore(session_id, f"m{n}")
        seen = []
        while len(seen) < 3:
            batch = await follower.next(5)
            seen += [r["content"] for r in batch.records]
    assert seen == ["m0", "m1", "m2"]


async def test_invalidate_makes_a_waiter_read_the_database(session_id):
    with wake.hub.session(session_id) as waiter:
        follower = Follower(BOB, session_id, 0, waiter)
        assert (await follower.next(0)).timed_out
        waiting = asyncio.ensure_future(follower.next(10))
        await asyncio.sleep(0.05)
        quiet = wake.hub.waiting
        wake.hub.sessions.pop(session_id)  # events of this session no longer reach it
        await astore(session_id, "missed")
        wake.hub.sessions[session_id] = {waiter}
        assert quiet and not waiting.done()
        wake.hub.invalidate([session_id])
        batch = await waiting
    assert [r["content"] for r in batch.records] == ["missed"]


async def test_a_cursor_past_the_newest_message_is_refused(session_id):
    from realtime.waiting import check_cursor

    with pytest.raises(OperationError) as refused:
        await sync_to_async(check_cursor)(session_id, 3)
    assert refused.value.code == ErrorCode.INVALID_ARGUMENT and "at most 0" in refused.value.hint


async def test_the_hub_forgets_a_waiter_when_its_block_ends(session_id):
    with wake.hub.session(session_id):
        with wake.hub.inbox("bob"):
            assert wake.hub.stats()["session_waiters"] == 1 and wake.hub.stats()["inbox_waiters"] == 1
    assert not wake.hub.waiting


async def test_an_inbox_waiter_wakes_on_a_mention_in_any_session(session_id):
    other = (await sync_to_async(operations.create_session)("other", "alice")).id
    with wake.hub.inbox("bob") as waiter:
        await astore(other, "nothing for bob here")
        await astore(session_id, "thanks @bob.")
        assert await waiter.wait(5)
        events, _ = waiter.take()
    assert [e["data"]["content"] for e in events] == ["thanks @bob."]


@pytest.mark.parametrize(("content", "metadata", "expected"), [
    ("@bob please look", {}, ["bob"]),
    ("ask @bob, then @carol.", {}, ["bob", "carol"]),
    ("mail bob@example.com", {}, []),
    ("@bob @bob", {"mentions": ["bob", "dave", 3, "bad id!"]}, ["bob", "dave"]),
    ("(@agent_1: done)", {}, ["agent_1"]),
    ("@", None, []),
])
def test_mentions(content, metadata, expected):
    assert mentions.mentioned(content, metadata) == expected


def test_mentions_are_capped():
    assert len(mentions.mentioned(" ".join(f"@a{n}" for n in range(80)), {})) == mentions.MAX_MENTIONS


def issued(agent_id="bob", ttl=3600):
    from realtime import tokens

    return tokens.issue(agent_id, "claude", ("read", "write"), ttl)[1]


async def test_a_wait_ends_soon_after_its_token_is_retired(session_id):
    from realtime import credentials

    claims = issued()
    with wake.hub.session(session_id, claims) as waiter:
        follower = Follower(BOB, session_id, 0, waiter)
        waiting = asyncio.ensure_future(follower.next(30))
        await asyncio.sleep(0.1)
        assert not waiting.done() and wake.hub.stats()["guarded"] == 1
        await sync_to_async(credentials.retire)(claims, "revoked")
        with pytest.raises(OperationError) as refused:
            await asyncio.wait_for(waiting, 10)
    assert refused.value.code == ErrorCode.TOKEN_REVOKED and "authenticate_agent" in refused.value.hint
    assert not wake.hub.guarded


async def test_a_wait_ends_when_its_token_expires(session_id):
    with wake.hub.session(session_id, issued(ttl=1)) as waiter:
        with pytest.raises(OperationError) as refused:
            await asyncio.wait_for(Follower(BOB, session_id, 0, waiter).next(30), 10)
    assert refused.value.code == ErrorCode.TOKEN_EXPIRED


async def test_a_good_token_keeps_waiting_and_the_guard_stops_with_the_last_waiter(session_id):
    from realtime import wait_guard

    claims = issued()
    with wake.hub.session(session_id, claims) as waiter:
        assert await wait_guard.check(wake.hub) == 0
        assert waiter.refusal is None
        guard = wake.hub._guard
    await asyncio.wait_for(guard, 5)  # ends once nobody is guarded


async def test_only_message_events_reach_waiters(session_id):
    from realtime.envelope import state_event
    from realtime.models import Session

    session = await Session.objects.aget(pk=session_id)
    with wake.hub.session(session_id) as waiter:
        wake.hub.notify([state_event(session)])
        assert not await waiter.wait(0.2)
