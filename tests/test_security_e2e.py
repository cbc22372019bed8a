"""Security with real processes: who may watch, what each viewer receives, and who may call MCP."""

import asyncio
import json

import httpx
import pytest
import websockets
from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

from tests.helpers import new_session, signed_token

pytestmark = pytest.mark.asyncio(loop_scope="function")


# WebSocket


async def test_websocket_without_credentials_is_refused_and_sees_nothing(stack):
    async with await stack.agent("owner") as agent:
        session_id = await new_session(agent)
        await agent.call("add_message", session_id=session_id, content="already stored")
        async with stack.watcher(session_id) as stranger:
            await stranger.send({"type": "ping"})
            await stranger.wait_closed()
        assert stranger.closed == 4401
        assert stranger.frames == []


async def test_websocket_with_a_bad_token_is_refused(stack):
    async with await stack.agent("owner") as agent:
        session_id = await new_session(agent)
        await agent.call("add_message", session_id=session_id, content="already stored")
    for token in (signed_token("not-the-server-secret-at-all-000"), signed_token(stack.jwt_secret, expires_in=-5),
                  "garbage"):
        async with stack.watcher(session_id, token=token) as header:
            await header.wait_closed()
        assert header.closed == 4401 and header.frames == []
        async with stack.watcher(session_id) as frame:
            await frame.send({"type": "auth", "token": token})
            await frame.wait_closed()
        assert frame.closed == 4401 and frame.frames == []


@pytest.mark.parametrize("origin", ["http://evil.example", "http://127.0.0.1.evil.example", "null"])
async def test_websocket_from_a_foreign_origin_is_refused_at_the_handshake(stack, origin):
    async with await stack.agent("owner") as agent:
        session_id = await new_session(agent)
        watcher = stack.watcher(session_id, token=agent.token, origin=origin)
        with pytest.raises(websockets.InvalidStatus) as refused:
            await watcher.connect()
        assert refused.value.response.status_code == 403


async def test_private_message_reaches_its_sender_and_no_other_agent(stack):
    agents = {name: await stack.agent(name, kind) for name, kind in
              [("alice", "claude"), ("bob", "claude"), ("gina", "gemini")]}
    try:
        alice = agents["alice"]
        session_id = await new_session(alice)
        views = {name: stack.watcher(session_id, token=agent.token) for name, agent in agents.items()}
        for view in views.values():
            await view.connect()
            await view.wait_caught_up()
        await alice.call("add_message", session_id=session_id, content="alice's secret plan", visibility="private")
        await alice.call("add_message", session_id=session_id, content="for claude agents", visibility="agent_only")
        await alice.call("add_message", session_id=session_id, content="for everyone")
        for view in views.values():
            await view.wait_for_seq(3)
        assert views["alice"].seqs == [1, 2, 3]
        assert views["bob"].seqs == [2, 3]
        assert views["gina"].seqs == [3]
        for name in ("bob", "gina"):
            assert "secret plan" not in json.dumps(views[name].frames)
        # Nor on the resume path, nor through get_messages.
        async with stack.watcher(session_id, token=agents["gina"].token, since=0) as later:
            await later.wait_caught_up()
        assert later.seqs == [3]
        result = await agents["bob"].call("get_messages", session_id=session_id)
        assert [m["seq"] for m in result["messages"]] == [2, 3]
        for view in views.values():
            await view.close()
    finally:
        for agent in agents.values():
            await agent.close()


async def test_broadcast_with_a_wrong_secret_delivers_nothing(stack):
    async with await stack.agent("owner") as agent:
        session_id = await new_session(agent)
        async with stack.watcher(session_id, token=agent.token) as watcher:
            await watcher.wait_caught_up()
            forged = {"type": "new_message", "session_id": session_id, "seq": 1, "data": {
                "id": 1, "sender": "owner", "sender_type": "claude", "content": "injected", "visibility": "public",
                "metadata": {}, "parent_message_id": None, "timestamp": "2026-01-01T00:00:00Z"}}
            async with httpx.AsyncClient() as client:
                url = f"{stack.app_url}/broadcast/{session_id}"
                for headers, status in (({}, 401), ({"Authorization": "Bearer wrong-secret"}, 403)):
                    response = await client.post(url, json=forged, headers=headers)
                    assert response.status_code == status
            result = await agent.call("add_message", session_id=session_id, content="genuine")
            assert result["seq"] == 1
            await watcher.wait_for_seq(1)
            assert [m["data"]["content"] for m in watcher.messages] == ["genuine"]


# MCP


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "wrong"}, {"X-API-Key": ""}])
async def test_mcp_without_the_api_key_is_401_json(stack, headers):
    request = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    async with httpx.AsyncClient() as client:
        response = await client.post(stack.mcp_url, json=request, headers={
            "Accept": "application/json, text/event-stream", **headers})
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["success"] is False and body["code"] == "API_KEY_REQUIRED" and "X-API-Key" in body["hint"]


async def test_mcp_client_without_the_api_key_cannot_connect(stack):
    statuses = []

    async def note(response):
        statuses.append(response.status_code)

    def noting_client(headers=None, timeout=None, auth=None, **_):
        http = create_mcp_http_client(headers=headers, timeout=timeout, auth=auth)
        http.event_hooks["response"].append(note)
        return http

    client = Client(StreamableHttpTransport(stack.mcp_url, httpx_client_factory=noting_client))
    with pytest.raises(MCPError, match="error response"):
        async with client:
            await client.list_tools()
    assert statuses and set(statuses) == {401}  # refused at the door, the only answer the client got


async def test_sidecar_health_needs_no_key(stack):
    health = await asyncio.to_thread(stack.sidecar_health)
    assert health["status"] == "ok"


TOKENS = {
    "forged": (lambda stack: signed_token("not-the-server-secret-at-all-000"), "TOKEN_INVALID"),
    "wrong issuer": (lambda stack: signed_token(stack.jwt_secret, iss="someone-else"), "TOKEN_INVALID"),
    "alg none": (lambda stack: signed_token(None, algorithm="none", iat=0, exp=2**40, permissions=["admin"]),
                 "TOKEN_INVALID"),
    "garbage": (lambda stack: "not.a.token", "TOKEN_INVALID"),
    "expired": (lambda stack: signed_token(stack.jwt_secret, expires_in=-5), "TOKEN_EXPIRED"),
}


@pytest.mark.parametrize("kind", list(TOKENS))
async def test_bad_tokens_get_a_structured_error(stack, kind):
    make, code = TOKENS[kind]
    token = make(stack)
    async with await stack.agent("owner") as agent:
        session_id = await new_session(agent)
        for tool, arguments in (("add_message", {"session_id": session_id, "content": "x"}),
                                ("get_messages", {"session_id": session_id}),
                                ("create_session", {"purpose": "x"})):
            result = await agent.raw(tool, auth_token=token, **arguments)
            assert result["success"] is False and result["code"] == code, (tool, result)
            assert result["hint"] and token not in json.dumps(result)
        # The same token as Authorization: Bearer on the MCP request.
        async with stack.mcp_client(headers={"Authorization": f"Bearer {token}"}) as client:
            result = await client.call_tool("get_messages", {"session_id": session_id}, raise_on_error=False)
        assert result.structured_content["code"] == code
        messages = await agent.call("get_messages", session_id=session_id)
        assert messages["count"] == 0  # nothing was written with the bad token
