"""Property-based: malformed arguments to every tool give a structured error and store nothing.

Each example starts from a valid call and breaks it: a value of the wrong type,
out of range, too long, off-pattern, outside an enum, a required argument left
out, or a well-formed but wrong session id or token. The bad values are derived
from each tool's input schema as the server publishes it, so a new tool or a new
limit is fuzzed without changes here (a tool without a valid example fails).
"""

import asyncio
import contextlib
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import schema_values
from tests.stack import Agent

STORED_TABLES = ("realtime_session", "realtime_message", "realtime_memoryentry")


@pytest.fixture(scope="module")
def fuzz_client(stack):
    """One event loop and one MCP client (with an admin agent's token) for every example."""
    runner = asyncio.Runner()
    agent = Agent(stack)
    runner.run(agent.open("fuzzer", "admin", ["read", "write", "admin"]))
    created = runner.run(agent.call("create_session", purpose="fuzz target"))
    message = runner.run(agent.call("add_message", session_id=created["session_id"], content="fuzz target"))
    tools = {tool.name: tool.input_schema for tool in runner.run(agent.client.list_tools())}
    yield runner, agent, tools, created["session_id"], message["message_id"]
    runner.run(agent.close())
    runner.close()


def valid_arguments(tool, token, session_id, message_id):
    now = datetime.now(UTC)
    examples = {
        "authenticate_agent": {"agent_id": "fuzzer", "agent_type": "claude"},
        "refresh_token": {"current_token": token},
        "create_session": {"purpose": "p"},
        "get_session": {"session_id": session_id},
        "add_message": {"session_id": session_id, "content": "c", "parent_message_id": message_id},
        "get_messages": {"session_id": session_id},
        "search_context": {"session_id": session_id, "query": "fuzz"},
        "search_by_sender": {"session_id": session_id, "sender": "fuzzer"},
        "search_by_timerange": {"session_id": session_id, "start_time": (now - timedelta(days=1)).isoformat(),
                                "end_time": now.isoformat()},
        "set_memory": {"key": "k", "value": 1},
        "get_memory": {"key": "k"},
        "list_memory": {},
        "delete_memory": {"key": "k"},
        "get_usage_guidance": {},
        "get_performance_metrics": {},
        "get_inbox": {},
        "mark_read": {"session_id": session_id, "seq": 1},
        "list_sessions": {},
        "watch_session": {"session_id": session_id, "since_seq": 0},
        "unwatch_session": {"session_id": session_id},
        "wait_for_messages": {"session_id": session_id, "timeout": 0},
    }
    assert tool in examples, f"add a valid example call for the new tool {tool!r}"
    arguments = dict(examples[tool])
    if tool not in ("authenticate_agent", "refresh_token"):
        arguments["auth_token"] = token
    return arguments


def bad_values(name, schema):
    """A strategy of values ``schema`` rejects (or the server refuses), for argument ``name``."""
    options = [schema_values.bad_values(schema)]
    if options[0] is None:  # any JSON value is allowed
        return None
    # Well-formed but wrong: the server must refuse these itself.
    if name == "session_id":
        options += [st.text(max_size=40).filter(lambda t: t != "all"), st.just("session_" + "0" * 16)]
    if name in ("auth_token", "current_token"):
        options += [st.text(min_size=1, max_size=200), st.just("a.b.c")]
    return st.one_of(options)


def stored_rows(stack):
    with contextlib.closing(sqlite3.connect(stack.data_dir / "db.sqlite3", timeout=10)) as db:
        return {table: db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in STORED_TABLES}


TOOLS = ["add_message", "authenticate_agent", "create_session", "delete_memory", "get_inbox", "get_memory",
         "get_messages", "get_performance_metrics", "get_session", "get_usage_guidance", "list_memory",
         "list_sessions", "mark_read", "refresh_token", "search_by_sender", "search_by_timerange", "search_context",
         "set_memory", "unwatch_session", "wait_for_messages", "watch_session"]


def test_every_tool_is_fuzzed(fuzz_client):
    assert sorted(fuzz_client[2]) == TOOLS


@pytest.mark.parametrize("tool", TOOLS)
@settings(max_examples=15, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_malformed_arguments_give_a_structured_error_and_store_nothing(stack, fuzz_client, tool, data):
    runner, agent, tools, session_id, message_id = fuzz_client
    schema = tools[tool]
    arguments = valid_arguments(tool, agent.token, session_id, message_id)
    breakable = {name: bad_values(name, prop) for name, prop in schema["properties"].items()}
    breakable = {name: values for name, values in breakable.items() if values is not None}
    broken = data.draw(st.lists(st.sampled_from(sorted(breakable)), min_size=1, max_size=3, unique=True))
    for name in broken:
        arguments[name] = data.draw(breakable[name], label=name)
    required = [name for name in schema.get("required", ()) if name in arguments]
    if required and data.draw(st.booleans(), label="drop a required argument"):
        arguments.pop(data.draw(st.sampled_from(required), label="dropped"))

    before = stored_rows(stack)
    result = runner.run(agent.client.call_tool(tool, arguments, raise_on_error=False))
    after = stored_rows(stack)

    structured = result.structured_content
    assert isinstance(structured, dict), result
    assert structured.get("success") is False, (arguments, structured)
    assert isinstance(structured.get("code"), str) and structured["code"].isupper(), structured
    assert isinstance(structured.get("error"), str) and structured["error"], structured
    assert after == before, (tool, arguments, structured)


@pytest.mark.parametrize("tool", [tool for tool in TOOLS if tool != "authenticate_agent"])
def test_well_formed_but_wrong_ids_and_tokens_are_refused(stack, fuzz_client, tool):
    runner, agent, tools, session_id, message_id = fuzz_client
    properties = tools[tool]["properties"]
    wrong = {
        "session_id": ["session_" + "0" * 16, "session_XYZ", "../etc"],
        "auth_token": ["a.b.c", agent.token[:-4] + "AAAA"],
        "current_token": ["a.b.c", agent.token[:-4] + "AAAA"],
    }
    cases = [(name, value) for name, values in wrong.items() if name in properties for value in values]
    assert cases, f"{tool} takes neither a session id nor a token"
    for name, value in cases:
        arguments = {**valid_arguments(tool, agent.token, session_id, message_id), name: value}
        before = stored_rows(stack)
        structured = runner.run(agent.client.call_tool(tool, arguments, raise_on_error=False)).structured_content
        assert structured["success"] is False and structured["code"] and structured["error"], (name, value, structured)
        assert stored_rows(stack) == before
