"""Property-based: malformed arguments to every tool give a structured error and store nothing.

Each example starts from a valid call and breaks it: a value of the wrong type,
out of range, too long, off-pattern, outside an enum, a required argument left
out, or a well-formed but wrong session id or token. The bad values are derived
from each tool's input schema as the server publishes it, so a new tool or a new
limit is fuzzed without changes here (a tool without a valid example fails).
"""

import asyncio
import contextlib
import re
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.stack import Agent

STORED_TABLES = ("realtime_session", "realtime_message", "realtime_memoryentry")
JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20))
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)), max_leaves=6)
NOT_A_NUMBER = st.text(max_size=12).map(lambda text: f"x{text}q")  # never a number, boolean or enum word


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
        "get_usage_guidance": {},
        "get_performance_metrics": {},
    }
    assert tool in examples, f"add a valid example call for the new tool {tool!r}"
    arguments = dict(examples[tool])
    if tool not in ("authenticate_agent", "refresh_token"):
        arguments["auth_token"] = token
    return arguments


def branches(schema):
    return schema.get("anyOf") or [schema]


def bad_values(name, schema):
    """A strategy of values ``schema`` rejects (or the server refuses), for argument ``name``."""
    types = {branch.get("type") for branch in branches(schema)}
    constraints = next((b for b in branches(schema) if b.get("type") not in (None, "null")), schema)
    if not types - {None}:  # any JSON value is allowed
        return None
    options = [st.lists(JSON_SCALARS, max_size=3)] if "array" not in types else []
    if "object" not in types:
        options.append(st.dictionaries(st.text(max_size=5), JSON_SCALARS, max_size=3))
    if "null" not in types:
        options.append(st.none())
    if "string" not in types:
        options.append(NOT_A_NUMBER)
    if not types & {"integer", "number", "boolean"}:
        options += [st.integers(), st.floats(allow_nan=False), st.booleans()]
    if types & {"string", "boolean"} and not types & {"integer", "number"}:
        options.append(st.integers().filter(lambda n: n not in (0, 1)))
    if "integer" in types:
        options.append(st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: f != int(f)))
    for bound, step in (("minimum", -1), ("maximum", 1)):
        if bound in constraints:
            options.append(st.integers(1, 10**6).map(lambda n, b=constraints[bound], s=step: b + s * n))
    if "maxLength" in constraints:
        options.append(st.just("x" * (constraints["maxLength"] + 1)))
    if constraints.get("minLength", 0) > 0:
        options.append(st.just(""))
    if "pattern" in constraints:
        pattern = re.compile(constraints["pattern"])
        options.append(st.text(min_size=1, max_size=40).filter(lambda text: not pattern.search(text)))
    if "enum" in constraints:
        options.append(NOT_A_NUMBER)
    if "maxItems" in constraints:
        options.append(st.just(["read"] * (constraints["maxItems"] + 1)))
    if "enum" in constraints.get("items", {}):
        options.append(st.lists(NOT_A_NUMBER, min_size=1, max_size=3))
    # Well-formed but wrong: the server must refuse these itself.
    if name == "session_id":
        options += [st.text(max_size=40).filter(lambda t: t != "all"), st.just("session_" + "0" * 16)]
    if name in ("auth_token", "current_token"):
        options += [st.text(min_size=1, max_size=200), st.just("a.b.c")]
    return st.one_of(options)


def stored_rows(stack):
    with contextlib.closing(sqlite3.connect(stack.data_dir / "db.sqlite3", timeout=10)) as db:
        return {table: db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in STORED_TABLES}


TOOLS = ["add_message", "authenticate_agent", "create_session", "get_memory", "get_messages",
         "get_performance_metrics", "get_session", "get_usage_guidance", "list_memory", "refresh_token",
         "search_by_sender", "search_by_timerange", "search_context", "set_memory"]


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
