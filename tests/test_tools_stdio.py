"""``python -m mcp_sidecar --transport stdio``: the same tools, the same database, still broadcasting."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from fastmcp import Client
from fastmcp.client.transports import StdioTransport

from tests.stack import PYTHON, ROOT

pytestmark = pytest.mark.asyncio(loop_scope="function")


def stdio_client(stack):
    transport = StdioTransport(PYTHON, ["-m", "mcp_sidecar", "--transport", "stdio"], env=stack.env, cwd=str(ROOT),
                               keep_alive=False, log_file=stack.data_dir / "stdio.log")
    return Client(transport)


async def test_every_tool_over_stdio_stores_to_the_stack_and_broadcasts(stack):
    async with stdio_client(stack) as client, await stack.agent("http-reader", "claude") as reader:
        async def call(tool, **arguments):
            result = await client.call_tool(tool, arguments, raise_on_error=False)
            return result.structured_content

        over_http = {tool.name for tool in await reader.client.list_tools()}
        assert {tool.name for tool in await client.list_tools()} == over_http

        auth = await call("authenticate_agent", agent_id="stdio-agent", agent_type="admin",
                          requested_permissions=["read", "write", "admin"])
        assert auth["success"], auth
        token = auth["token"]
        refreshed = await call("refresh_token", current_token=token)
        assert refreshed["success"] and refreshed["agent_id"] == "stdio-agent"
        token = refreshed["token"]

        created = await call("create_session", purpose="over stdio", auth_token=token)
        session_id = created["session_id"]
        async with stack.watcher(session_id, token=reader.token) as watcher:
            await watcher.wait_caught_up()
            first = await call("add_message", session_id=session_id, content="hello from stdio", auth_token=token)
            second = await call("add_message", session_id=session_id, content="a reply", auth_token=token,
                                parent_message_id=first["message_id"])
            assert second["seq"] == 2, second
            await watcher.wait_for_seq(2)
            assert [m["data"]["content"] for m in watcher.messages] == ["hello from stdio", "a reply"]

        # The HTTP sidecar reads what the stdio process stored.
        seen = await reader.call("get_messages", session_id=session_id)
        assert [m["content"] for m in seen["messages"]] == ["hello from stdio", "a reply"]

        now = datetime.now(UTC)
        reads = {
            "get_session": {"session_id": session_id},
            "get_messages": {"session_id": session_id, "thread_id": first["message_id"]},
            "search_context": {"session_id": session_id, "query": "stdio"},
            "search_by_sender": {"session_id": session_id, "sender": "stdio-agent"},
            "search_by_timerange": {"session_id": session_id, "start_time": (now - timedelta(hours=1)).isoformat(),
                                    "end_time": (now + timedelta(hours=1)).isoformat()},
            "set_memory": {"key": "stdio/state", "value": {"ok": True}, "session_id": session_id},
            "get_memory": {"key": "stdio/state", "session_id": session_id},
            "list_memory": {"session_id": "all"},
            "get_usage_guidance": {},
            "get_performance_metrics": {},
        }
        for tool, arguments in reads.items():
            result = await call(tool, auth_token=token, **arguments)
            assert result["success"], (tool, result)
        assert (await call("get_memory", key="stdio/state", session_id=session_id, auth_token=token))["value"] == {
            "ok": True}
        found = await call("search_context", session_id=session_id, query="hello frm stdio", auth_token=token)
        assert found["results"][0]["message"]["content"] == "hello from stdio"
        assert (await call("get_messages", session_id=session_id, auth_token=token))["count"] == 2
        metrics = await call("get_performance_metrics", auth_token=token)
        assert metrics["bridge"]["sent"] >= 2 and metrics["bridge"]["dropped"] == 0

        setup = await client.get_prompt("setup-collaboration", {"purpose": "stdio check"})
        assert "stdio check" in setup.messages[0].content.text
        errors = await call("get_messages", session_id="nope", auth_token=token)
        assert errors["code"] == "INVALID_SESSION_ID"


async def test_stdio_keeps_stdout_for_the_protocol(stack):
    async with stdio_client(stack) as client:
        result = await client.call_tool("authenticate_agent", {"agent_id": "quiet", "agent_type": "claude"},
                                        raise_on_error=False)
        assert result.structured_content["success"]
        assert json.loads(result.content[0].text)["agent_id"] == "quiet"
