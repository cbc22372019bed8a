"""The core path with real processes: MCP client → sidecar → Daphne → WebSocket clients."""

import asyncio

import pytest

from tests.helpers import new_session

pytestmark = pytest.mark.asyncio(loop_scope="function")


async def test_every_message_reaches_every_watcher_once_in_order(stack):
    async with await stack.agent("writer-1") as agent:
        session_id = await new_session(agent)
        async with stack.watcher(session_id, token=agent.token) as first, stack.watcher(
            session_id, token=agent.token
        ) as second:
            await first.wait_caught_up()
            await second.wait_caught_up()
            for n in range(1, 31):
                result = await agent.call("add_message", session_id=session_id, content=f"message {n}")
                assert result["success"] and result["seq"] == n, result
            for watcher in (first, second):
                await watcher.wait_for_seq(30)
                assert watcher.seqs == list(range(1, 31))
                assert [m["data"]["content"] for m in watcher.messages] == [f"message {n}" for n in range(1, 31)]


async def test_hello_then_replay_after_since(stack):
    async with await stack.agent("writer-2") as agent:
        session_id = await new_session(agent)
        for n in range(5):
            await agent.call("add_message", session_id=session_id, content=f"m{n}")
        async with stack.watcher(session_id, token=agent.token, since=2) as watcher:
            await watcher.wait_caught_up()
            hello = watcher.frames[0]
            assert hello["type"] == "hello"
            assert hello["session_id"] == session_id and hello["last_seq"] == 5
            assert hello["viewer"]["id"] == "writer-2"
            assert watcher.seqs == [3, 4, 5]
            # A resume frame replays again from an earlier point; nothing newer is invented.
            await watcher.send({"type": "resume", "since": 0})
            await watcher.wait(lambda w: len(w.messages) == 8)
            assert watcher.seqs == [3, 4, 5, 1, 2, 3, 4, 5]


async def test_private_message_reaches_only_its_senders_viewer(stack):
    async with await stack.agent("alice", "claude") as alice, await stack.agent("bob", "claude") as bob, \
            await stack.agent("root", "admin") as admin:
        session_id = await new_session(alice)
        async with stack.watcher(session_id, token=alice.token) as alice_view, stack.watcher(
            session_id, token=bob.token
        ) as bob_view, stack.watcher(session_id, token=admin.token) as admin_view:
            for view in (alice_view, bob_view, admin_view):
                await view.wait_caught_up()
            await alice.call("add_message", session_id=session_id, content="alice's secret", visibility="private")
            await alice.call("add_message", session_id=session_id, content="for everyone")
            for view in (alice_view, bob_view, admin_view):
                await view.wait_for_seq(2)
            assert alice_view.seqs == [1, 2]
            assert admin_view.seqs == [1, 2]
            assert bob_view.seqs == [2]
            assert all("secret" not in str(frame) for frame in bob_view.frames)


async def test_many_concurrent_agents_lose_nothing(stack):
    agents = [await stack.agent(f"parallel-{n}") for n in range(4)]
    try:
        session_id = await new_session(agents[0])
        async with stack.watcher(session_id, token=agents[0].token) as watcher:
            await watcher.wait_caught_up()

            async def write(agent, count):
                for n in range(count):
                    result = await agent.call("add_message", session_id=session_id, content=f"{agent.agent_id} {n}")
                    assert result["success"], result

            await asyncio.gather(*(write(agent, 25) for agent in agents))
            await watcher.wait_for_seq(100)
            assert watcher.seqs == list(range(1, 101))
    finally:
        for agent in agents:
            await agent.close()
    health = stack.sidecar_health()["bridge"]
    assert health["dropped"] == 0 and health["rejected"] == 0
