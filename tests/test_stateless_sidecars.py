"""Several sidecars behind one URL: with SCS_MCP_STATELESS any of them answers any request."""

import httpx
import pytest

from tests.helpers import new_session

pytestmark = pytest.mark.asyncio(loop_scope="function")

INITIALIZE = {
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}},
}
AUTHENTICATE = {
    "jsonrpc": "2.0", "id": 2, "method": "tools/call",
    "params": {"name": "authenticate_agent", "arguments": {"agent_id": "roamer", "agent_type": "claude"}},
}


def second_sidecar(stack):
    """Another sidecar over the same stack (stopped with it); its MCP URL."""
    return f"http://127.0.0.1:{stack.add_sidecar()}/mcp/"


def headers(stack, **extra):
    return {"X-API-Key": stack.api_key, "Accept": "application/json, text/event-stream", **extra}


async def test_a_stateless_client_may_land_on_any_sidecar(fresh_stack):
    stack = fresh_stack(SCS_MCP_STATELESS="1")
    other = second_sidecar(stack)
    async with httpx.AsyncClient(timeout=10) as client:
        first = await client.post(stack.mcp_url, json=INITIALIZE, headers=headers(stack))
        assert first.status_code == 200 and "mcp-session-id" not in first.headers
        second = await client.post(other, json=AUTHENTICATE, headers=headers(stack))
    assert second.status_code == 200 and '\\"success\\":true' in second.text
    # And a real MCP client works end to end against a stateless sidecar.
    async with await stack.agent("writer") as agent:
        session_id = await new_session(agent, "stateless")
        async with stack.watcher(session_id, token=agent.token) as watcher:
            assert (await agent.call("add_message", session_id=session_id, content="hi"))["seq"] == 1
            await watcher.wait_for_seq(1)


async def test_by_default_an_mcp_session_belongs_to_the_sidecar_that_opened_it(fresh_stack):
    stack = fresh_stack()
    other = second_sidecar(stack)
    async with httpx.AsyncClient(timeout=10) as client:
        first = await client.post(stack.mcp_url, json=INITIALIZE, headers=headers(stack))
        session = first.headers["mcp-session-id"]
        pinned = headers(stack, **{"Mcp-Session-Id": session})
        elsewhere = await client.post(other, json=AUTHENTICATE, headers=pinned)
    assert elsewhere.status_code in (400, 404)  # hence sticky routing, or SCS_MCP_STATELESS
