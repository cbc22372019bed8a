"""The benchmarks' own clients: the lean MCP client (bench.mcp_http) and the broadcast client comparison."""

import json

import pytest

from bench import broadcast_client_bench
from bench.mcp_http import CallError, LeanAgent, _answer
from tests.helpers import new_session


async def test_the_lean_client_is_answered_as_fastmcps_client_is(stack):
    async with await LeanAgent.open(stack, "lean-writer", permissions=("read", "write")) as lean, \
            await stack.agent("fastmcp-reader") as reader:
        assert lean.permissions == ["read", "write"]
        session_id = await new_session(lean, "lean")
        stored = await lean.call("add_message", session_id=session_id, content="from the lean client")
        assert stored["success"] and stored["seq"] == 1
        read = await reader.call("get_messages", session_id=session_id)
        assert [(m["sender"], m["content"]) for m in read["messages"]] == [("lean-writer", "from the lean client")]
        refused = await lean.call("add_message", session_id="session_00000000deadbeef", content="x")
        assert refused["success"] is False and refused["code"] == "SESSION_NOT_FOUND"


async def test_the_lean_client_raises_what_the_server_refuses_as_a_protocol_error(stack):
    async with LeanAgent(stack.mcp_url, stack.api_key) as lean:
        with pytest.raises(CallError):
            await lean.raw("no_such_tool")
    async with LeanAgent(stack.mcp_url, "not-the-key") as stranger:
        with pytest.raises(CallError, match="HTTP 401: .*API key"):
            await stranger.raw("authenticate_agent", agent_id="x", agent_type="claude")


def test_an_answer_on_an_sse_stream_is_its_last_event():
    answer = {"jsonrpc": "2.0", "id": 3, "result": {"structuredContent": {"success": True}}}
    body = ": ping\r\n\r\nevent: message\r\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\r\n\r\n" \
           f"event: message\r\ndata: {json.dumps(answer)}\r\n\r\n"
    assert _answer(body, "text/event-stream") == answer
    assert _answer(json.dumps(answer), "application/json") == answer
    with pytest.raises(CallError):
        _answer(": ping\r\n\r\n", "text/event-stream")


def test_the_broadcast_client_bench_prints_both_clients(capsys):
    assert broadcast_client_bench.main(["--requests", "20", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    assert "aiohttp (BroadcastClient)" in out and "httpx.AsyncClient" in out
