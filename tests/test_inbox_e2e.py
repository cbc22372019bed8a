"""The inbox and read cursors against the real processes: a waiting get_inbox is woken by another agent's mention."""

import asyncio

from tests.helpers import new_session, say, succeeded

WRITER = ("read", "write")


async def test_a_waiting_inbox_is_woken_by_another_agents_mention(stack):
    async with await stack.agent("inbox-bob", "claude", WRITER) as bob, \
            await stack.agent("inbox-alice", "claude", WRITER) as alice:
        here, there = await new_session(alice, "here"), await new_session(alice, "there")
        await say(alice, here, "@inbox-bob an old mention")
        cursor = succeeded(await bob.call("get_inbox"))["cursor"]
        assert cursor == 1

        waiting = asyncio.ensure_future(bob.call("get_inbox", since=cursor, wait=120))
        await say(alice, there, "@inbox-bob only alice may read this", visibility="private")
        await say(alice, there, "no mention at all")
        await asyncio.sleep(0.5)
        assert not waiting.done()  # the private mention is not bob's to see: he waits on
        posted = await say(alice, there, "@inbox-bob please look at this")
        answer = succeeded(await waiting)

    assert [(m["session_id"], m["seq"], m["content"]) for m in answer["messages"]] == [
        (there, posted["seq"], "@inbox-bob please look at this")]
    assert answer["timed_out"] is False and answer["cursor"] == 3


async def test_the_read_loop_over_real_processes(stack):
    """list_sessions → get_messages(unread_only) → mark_read: the unread count follows."""
    async with await stack.agent("loop-bob", "claude", WRITER) as bob, \
            await stack.agent("loop-alice", "claude", WRITER) as alice:
        session_id = await new_session(alice, "the loop")
        for n in range(3):
            await say(alice, session_id, f"step {n}")

        def unread(answer):
            return {s["id"]: s["unread"] for s in succeeded(answer)["sessions"]}[session_id]

        assert unread(await bob.call("list_sessions")) == 3
        read = succeeded(await bob.call("get_messages", session_id=session_id, unread_only=True, limit=2,
                                        mark_read=True))
        assert [m["content"] for m in read["messages"]] == ["step 0", "step 1"]
        assert unread(await bob.call("list_sessions")) == 1
        assert succeeded(await bob.call("mark_read", session_id=session_id, seq=3))["read_seq"] == 3
        assert unread(await bob.call("list_sessions")) == 0
        assert unread(await alice.call("list_sessions")) == 0  # her own messages are never unread for her
