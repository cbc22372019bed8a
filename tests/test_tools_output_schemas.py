"""Every tool publishes an outputSchema, and real results fit it: successes and refusals alike.

The MCP client (the mcp SDK under fastmcp's ``Client``) validates each result's structuredContent
against the tool's outputSchema and raises when it does not fit, so every call below that returns
is a result the client accepted. The schemas are closed (no undeclared keys): a key a tool adds
without declaring it fails here.
"""

import contextlib
import logging

import jsonschema
import pytest

from realtime.errors import ErrorCode

pytestmark = pytest.mark.asyncio(loop_scope="function")

MISSING_SESSION = "session_0000000000000000"


def calls(session_id, refresh_token, keyed_agent):
    """Per tool: arguments that succeed, then arguments for each refusal to check (code expected)."""
    return {
        "authenticate_agent": ({"agent_id": "schema-new", "agent_type": "claude"}, [
            ({"agent_id": keyed_agent, "agent_type": "claude"}, "AGENT_KEY_REQUIRED"),
            ({"agent_id": "not an id!", "agent_type": "claude"}, "INVALID_ARGUMENT"),
        ]),
        "refresh_token": ({"current_token": refresh_token}, [
            ({"current_token": "not-a-token"}, "TOKEN_INVALID"),
        ]),
        "create_session": ({"purpose": "schemas"}, [({"purpose": ""}, "INVALID_ARGUMENT")]),
        "get_session": ({"session_id": session_id}, [({"session_id": MISSING_SESSION}, "SESSION_NOT_FOUND")]),
        "add_message": ({"session_id": session_id, "content": "hello", "metadata": {"k": [1, None]}}, [
            ({"session_id": session_id, "content": "x", "parent_message_id": 10**9}, "PARENT_NOT_FOUND"),
        ]),
        "get_messages": ({"session_id": session_id, "limit": 1}, [
            ({"session_id": "nope"}, "INVALID_SESSION_ID"),
        ]),
        "search_context": ({"session_id": session_id, "query": "hello"}, [
            ({"session_id": session_id, "query": "!!!"}, "INVALID_QUERY"),
        ]),
        "search_by_sender": ({"session_id": session_id, "sender": "schema-writer", "limit": 1}, [
            ({"session_id": MISSING_SESSION, "sender": "x"}, "SESSION_NOT_FOUND"),
        ]),
        "search_by_timerange": ({"session_id": session_id, "start_time": "2000-01-01T00:00:00Z",
                                 "end_time": "2100-01-01T00:00:00Z"}, [
            ({"session_id": session_id, "start_time": "2001-01-01", "end_time": "2000-01-01"}, "INVALID_TIME_RANGE"),
            ({"session_id": session_id, "start_time": "soon", "end_time": "later"}, "INVALID_DATETIME"),
        ]),
        "set_memory": ({"key": "schema", "value": {"any": ["json", 1, 2.5, True, None]}, "expires_in": 600}, [
            ({"key": "schema", "value": 1, "overwrite": False}, "MEMORY_KEY_EXISTS"),
        ]),
        "get_memory": ({"key": "schema"}, [({"key": "never-stored"}, "MEMORY_NOT_FOUND")]),
        "list_memory": ({"prefix": "sch"}, [({"limit": 0}, "INVALID_ARGUMENT")]),
        "delete_memory": ({"key": "schema"}, [({"key": "schema"}, "MEMORY_NOT_FOUND")]),
        "get_usage_guidance": ({"guidance_type": "troubleshooting"}, [
            ({"guidance_type": "gossip"}, "INVALID_ARGUMENT"),
        ]),
        "get_performance_metrics": ({}, []),
        "get_inbox": ({"wait": 0.01}, [({"since": 10**9}, "INVALID_ARGUMENT")]),
        "mark_read": ({"session_id": session_id, "seq": 1}, [
            ({"session_id": session_id, "seq": 10**9}, "INVALID_ARGUMENT"),
            ({"session_id": MISSING_SESSION, "seq": 1}, "SESSION_NOT_FOUND"),
        ]),
        "list_sessions": ({"include_closed": True, "limit": 2}, [({"offset": 10**9}, "OFFSET_TOO_LARGE")]),
        "watch_session": ({"session_id": session_id, "since_seq": 0}, [
            ({"session_id": MISSING_SESSION}, "SESSION_NOT_FOUND"),
            ({"session_id": session_id, "since_seq": 10**9}, "INVALID_ARGUMENT"),
        ]),
        "unwatch_session": ({"session_id": session_id}, [({"session_id": ""}, "INVALID_ARGUMENT")]),
        "wait_for_messages": ({"session_id": session_id, "timeout": 0}, [
            ({"session_id": MISSING_SESSION}, "SESSION_NOT_FOUND"),
            ({"session_id": session_id, "since_seq": 10**9}, "INVALID_ARGUMENT"),
        ]),
    }


PUSHING = ("watch_session", "unwatch_session")  # they need an MCP session: called by a client with the handshake


class ParseErrors(logging.Handler):
    """fastmcp's client logs (rather than raises) when it cannot turn structuredContent into ``.data``."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def parse_errors():
    handler = ParseErrors()
    logger = logging.getLogger("fastmcp")
    logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)


async def call(agent, tool, arguments, with_token=True):
    """One call through the validating client; the structured result and its parsed ``.data``."""
    if with_token and tool not in ("authenticate_agent", "refresh_token"):
        arguments = {**arguments, "auth_token": agent.token}
    result = await agent.client.call_tool(tool, arguments, raise_on_error=False)
    return result.structured_content, result.data


async def test_every_tool_answers_within_its_schema(stack):
    keyed_agent = "schema-keyed"
    stack.issue_key(keyed_agent)
    writer, reader = await stack.agent("schema-writer", "admin"), await stack.agent("schema-reader", "observer")
    pusher = await stack.agent("schema-writer", "admin", mode="legacy")
    async with writer, reader, pusher:
        listed = {tool.name: tool for tool in await writer.client.list_tools()}
        session_id = (await writer.call("create_session", purpose="schema checks"))["session_id"]
        spare = (await writer.raw("authenticate_agent", agent_id="schema-writer", agent_type="admin"))["token"]
        table = calls(session_id, spare, keyed_agent)
        assert set(table) == set(listed), "every tool needs a row here"
        seen_codes = set()
        with parse_errors() as unparsed:
            for tool, (arguments, refusals) in table.items():
                assert listed[tool].output_schema, f"{tool} publishes no outputSchema"
                caller = pusher if tool in PUSHING else writer
                result, data = await call(caller, tool, arguments)
                assert result["success"] is True, (tool, result)
                assert data is not None, (tool, result)
                for bad, code in refusals:
                    result, data = await call(caller, tool, bad)
                    assert result["success"] is False and result["code"] == code, (tool, bad, result)
                    assert result["error"] and result["hint"], result
                    seen_codes.add(code)
                # Every tool that needs a token refuses one that is missing, and one without the permission.
                needed = listed[tool].meta["permission"]
                if needed != "none":
                    result, _ = await call(writer, tool, arguments, with_token=False)
                    assert result["code"] == "AUTH_REQUIRED", (tool, result)
                    result, _ = await call(reader, tool, arguments)  # an agent holding read only
                    denied = result.get("code") == "PERMISSION_DENIED"
                    assert denied is (needed != "read"), (tool, result)
                    seen_codes.update({"AUTH_REQUIRED", "PERMISSION_DENIED"})
        assert not unparsed, unparsed
        assert seen_codes <= set(ErrorCode.__members__)


async def test_a_rate_limited_answer_fits_too(fresh_stack):
    stack = fresh_stack(SCS_TOOL_RATE="1", SCS_TOOL_BURST="3")
    async with await stack.agent("schema-hasty") as agent:
        for _ in range(50):  # the burst is 3 and refills at 1 a second: far fewer calls than this run out
            answer = await agent.call("list_memory")
            if not answer["success"]:
                break
    assert answer["code"] == "RATE_LIMITED" and answer["retry_after"] > 0, answer


async def test_the_schemas_are_closed(stack):
    """What makes the client checks above worth something: a stray key or a wrong type does not fit."""
    async with await stack.agent("schema-strict") as agent:
        schema = {tool.name: tool for tool in await agent.client.list_tools()}["add_message"].output_schema
        session_id = (await agent.call("create_session", purpose="strict"))["session_id"]
        good = await agent.call("add_message", session_id=session_id, content="fits")
    refusal = {"success": False, "error": "no", "code": "SESSION_NOT_FOUND", "hint": "create one"}
    jsonschema.validate(good, schema)
    jsonschema.validate(refusal, schema)
    jsonschema.validate({**refusal, "code": "RATE_LIMITED", "retry_after": 0.5}, schema)
    for wrong in ({**good, "undeclared": 1}, {**good, "seq": "1"}, {**refusal, "code": "not a code"},
                  {**refusal, "success": True}, {key: good[key] for key in good if key != "timestamp"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(wrong, schema)
