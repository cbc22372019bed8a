"""``wait_for_messages`` on real processes: who is woken, by what, and what each waiter gets.

Daphne and the HTTP sidecar run as in production (``tests.stack``); agents are real MCP clients.
No test bounds a wall-clock time (timing goals live in ``python -m bench wake``): a wake is shown
by a call that returns before its long timeout with the message, never by how fast.
"""

import asyncio
import textwrap

import pytest

from tests.helpers import eventually, new_session, say, succeeded

pytestmark = pytest.mark.asyncio(loop_scope="function")

LONG = 120  # a timeout no test reaches when the waiter is woken


def wait(agent, session_id, since_seq=0, timeout=LONG, **arguments):
    """A ``wait_for_messages`` call, started in the background."""
    return asyncio.ensure_future(
        agent.call("wait_for_messages", session_id=session_id, since_seq=since_seq, timeout=timeout, **arguments))


async def waiting(stack, count):
    """Until the sidecar holds ``count`` waiters of sessions."""
    await eventually(lambda: stack.sidecar_health()["wake"]["session_waiters"] == count, 30,
                     f"{count} waiters in the sidecar", interval=0.05)


def contents(result):
    return [message["content"] for message in succeeded(result)["messages"]]


async def test_a_waiter_gets_what_it_may_see_and_passes_over_the_rest(stack):
    async with await stack.agent("wait-a", "claude", ["read", "write"]) as alice, \
            await stack.agent("wait-b", "claude", ["read", "write"]) as bob, \
            await stack.agent("wait-root", "admin") as root:
        session_id = await new_session(alice)
        bobs, roots = wait(bob, session_id), wait(root, session_id)
        await waiting(stack, 2)
        first = await say(alice, session_id, "for everyone")
        for result in await asyncio.gather(bobs, roots):
            assert contents(result) == ["for everyone"] and result["last_seq"] == first["seq"], result
            assert not result["timed_out"] and result["messages"][0]["sender"] == "wait-a"

        bobs, roots = wait(bob, session_id, first["seq"], timeout=2), wait(root, session_id, first["seq"])
        await waiting(stack, 2)
        secret = await say(alice, session_id, "only alice", visibility="private")
        root_result = await roots
        assert contents(root_result) == ["only alice"] and root_result["last_seq"] == secret["seq"]
        bob_result = await bobs
        assert bob_result == {"success": True, "messages": [], "last_seq": secret["seq"], "timed_out": True}

        # Own messages are passed over unless asked for.
        mine = await say(bob, session_id, "from bob")
        result = await bob.call("wait_for_messages", session_id=session_id, since_seq=secret["seq"], timeout=0)
        assert result == {"success": True, "messages": [], "last_seq": mine["seq"], "timed_out": True}
        result = await bob.call("wait_for_messages", session_id=session_id, since_seq=secret["seq"], timeout=0,
                                include_own=True)
        assert contents(result) == ["from bob"]
    await waiting(stack, 0)


async def test_host_code_in_another_process_wakes_a_waiting_agent(stack):
    async with await stack.agent("wait-host", "claude", ["read", "write"]) as agent:
        session_id = await new_session(agent)
        waiter = wait(agent, session_id)
        await waiting(stack, 1)
        code = textwrap.dedent(f"""
            from realtime import publish
            publish.add_message({session_id!r}, "from host code", sender="importer")
        """)
        await asyncio.to_thread(stack.shell, code)
        result = await waiter
        assert contents(result) == ["from host code"] and result["messages"][0]["sender"] == "importer"
        wake = stack.sidecar_health()["wake"]
        assert wake["stream"]["source"] == "daphne" and wake["stream"]["connected"], wake
