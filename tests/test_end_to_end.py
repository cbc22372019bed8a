"""The core path with real processes: MCP client → sidecar → Daphne → WebSocket clients."""

import asyncio

import httpx
import pytest

from bench.mcp_http import LeanAgent
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


async def test_each_call_is_answered_with_one_json_body_on_either_protocol(stack):
    """The sidecar answers calls as JSON, not event streams, whatever revision the client speaks."""
    headers = {"X-API-Key": stack.api_key, "Accept": "application/json, text/event-stream"}
    async with httpx.AsyncClient(timeout=30) as http:
        hello = await http.post(stack.mcp_url, headers=headers, json={
            "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "old", "version": "1"}}})
        headers |= {"mcp-session-id": hello.headers["mcp-session-id"], "mcp-protocol-version": "2025-06-18"}
        await http.post(stack.mcp_url, headers=headers, json={"jsonrpc": "2.0", "method": "notifications/initialized"})
        listed = await http.post(stack.mcp_url, headers=headers,
                                 json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
        modern = LeanAgent(stack.mcp_url, stack.api_key)  # the 2026-07-28 revision: no handshake, its headers
        arguments = {"agent_id": "json-answers", "agent_type": "claude"}
        authenticated = await http.post(stack.mcp_url, headers=modern.headers | {"mcp-name": "authenticate_agent"},
                                        json={"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
                                            "name": "authenticate_agent", "arguments": arguments,
                                            "_meta": modern.meta}})
    assert [answer.headers["content-type"] for answer in (hello, listed, authenticated)] == ["application/json"] * 3
    assert "add_message" in {tool["name"] for tool in listed.json()["result"]["tools"]}
    assert authenticated.json()["result"]["structuredContent"]["success"] is True, authenticated.text
