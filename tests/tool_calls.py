"""Generated MCP tool calls and what each must answer, for the in-process tool fuzz (tests/test_fuzz.py).

``draw_call`` starts from a call valid in every respect: the arguments the tool's
input schema (from ``tools/list``) requires, each of the right type and in range,
a session and a token the test created, a token holding the permission the tool
needs. Most calls stay valid; the others break exactly one field:

- ``schema``: one argument gets a value its schema rejects (wrong type, out of range,
  too long, off pattern, outside an enum) → ``INVALID_ARGUMENT``;
- ``unknown``: an argument the tool does not take → ``INVALID_ARGUMENT``;
- ``missing``: a required argument left out → ``INVALID_ARGUMENT``;
- ``wrong``: well-formed but wrong for this server (a session that does not exist,
  a forged, expired or missing token, a token without the permission, a parent
  from another session, a key never set, blank text, a reversed time range …) →
  the error code the tool documents for it.

``check_shape`` says whether a successful answer has the fields the tool documents.
"""

import math
import string
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from hypothesis import strategies as st

from realtime import conf
from realtime.envelope import DATA_FIELDS
from tests import schema_values

WRITE_TOOLS = ("create_session", "add_message", "set_memory")
INVALID = frozenset({"INVALID_ARGUMENT"})


@dataclass(repr=False)
class World:
    """What the test created: sessions, messages, memory entries and tokens."""

    session_id: str
    other_session_id: str
    message_ids: list  # messages of session_id
    other_message_id: int  # a message of other_session_id
    memory: dict  # token -> [(key, session_id or None)] set for that token's agent
    tokens: dict  # "reader" (read only), "writer" (read, write), "admin" (read, write, admin), "expired", "forged"
    permission: dict  # tool -> permission it needs (None: no token)
    issue: object  # () -> a fresh token of the writer's agent, to hand to refresh_token


@dataclass
class Call:
    arguments: dict
    kind: str  # "valid", "schema", "unknown", "missing" or "wrong"
    expect: frozenset = field(default_factory=frozenset)  # error codes a refusal may carry; empty: must succeed
    what: str = ""  # which field was broken, for the report


def words():
    return st.text(alphabet=string.ascii_letters + string.digits, min_size=1, max_size=12)


def text_with_a_word(max_size):
    """Text a person could have written: anything, with at least one letter or digit."""
    return st.tuples(st.text(max_size=min(max_size, 120) - 12), words()).map("".join)


def iso_times():
    moments = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))
    return st.tuples(moments, st.sampled_from(["Z", "+00:00", ""])).map(
        lambda pair: pair[0].isoformat().replace("+00:00", pair[1]))


def token_for(world, tool):
    """Tokens of agents allowed to call ``tool``."""
    needed = world.permission.get(tool)
    if needed == "admin":
        return st.just(world.tokens["admin"])
    if needed == "write":
        return st.sampled_from([world.tokens["writer"], world.tokens["admin"]])
    return st.sampled_from([world.tokens["writer"], world.tokens["admin"], world.tokens["reader"]])


def valid_value(world, tool, name, schema):
    """A strategy of values for argument ``name`` of ``tool`` that the server must accept."""
    sessions = st.sampled_from([world.session_id, world.other_session_id])
    special = {
        "auth_token": token_for(world, tool),
        "current_token": st.builds(world.issue),
        "session_id": sessions,
        "content": text_with_a_word(conf.get("SCS_MAX_CONTENT_LENGTH")) | st.just("a" * conf.get(
            "SCS_MAX_CONTENT_LENGTH")),
        "purpose": text_with_a_word(conf.get("SCS_MAX_PURPOSE_LENGTH")),
        "query": text_with_a_word(100),
        "start_time": iso_times(),
        "end_time": iso_times(),
        "offset": st.integers(0, conf.get("SCS_MAX_OFFSET")),
        "parent_message_id": st.none() | st.sampled_from(world.message_ids),
        "metadata": st.none() | schema_values.JSON_OBJECTS,
        "value": schema_values.JSON_VALUES,
        "expires_in": st.none() | st.just(0) | st.integers(3600, conf.get("SCS_MAX_MEMORY_TTL")),
        "wait": st.just(0),  # a valid wait blocks for as long: the inbox's waiting has its own tests
        "since": st.none() | st.just(0),  # the fuzzing agents are never mentioned: 0 is their newest cursor
        "seq": st.integers(0, 1),  # mark_read: both sessions hold at least one message
    }
    if tool == "wait_for_messages" and name in ("since_seq", "timeout"):
        # At most the newest seq of either session (they hold 5 and 1 messages); waits the fuzz can afford.
        return st.integers(0, 1) if name == "since_seq" else st.sampled_from([0, 0.01])
    if tool in ("set_memory", "get_memory", "list_memory") and name == "session_id":
        return st.none() | sessions | (st.just("all") if tool == "list_memory" else st.nothing())
    return special.get(name, schema_values.valid_values(schema))


def make_consistent(world, tool, arguments, draw):
    """Fix what single values cannot know about each other, so that the call is valid as a whole."""
    if tool == "add_message":
        if arguments.get("visibility") == "admin_only":
            arguments["auth_token"] = world.tokens["admin"]
        if arguments.get("parent_message_id") is not None:
            arguments["session_id"] = world.session_id
    if tool == "search_by_timerange" and arguments["start_time"] > arguments["end_time"]:
        arguments["start_time"], arguments["end_time"] = arguments["end_time"], arguments["start_time"]
    if tool == "get_memory":
        token = draw(st.sampled_from(sorted(world.memory)), label="memory owner")
        key, session_id = draw(st.sampled_from(world.memory[token]), label="memory entry")
        arguments.update(auth_token=token, key=key)
        arguments.pop("session_id", None)
        if session_id is not None:
            arguments["session_id"] = session_id
    if tool == "get_messages" and any(arguments.get(name) for name in ("thread_id", "visibility_filter", "offset")):
        arguments.pop("mark_read", None)  # it would mark the messages such a page leaves out: refused
    if tool == "wait_for_messages":
        arguments.setdefault("timeout", 0)  # left out, it is 30 s: a call that waits the fuzz cannot afford
    if tool == "set_memory" and arguments.get("overwrite") is False:
        # A new key: with overwrite=false an existing one is MEMORY_KEY_EXISTS.
        arguments["key"] = f"{arguments['key'][:200]}.{uuid.uuid4().hex}"
    return arguments


def valid_call(world, tool, schema, draw):
    properties, required = schema["properties"], set(schema.get("required", ()))
    arguments = {}
    for name in sorted(properties):
        # A token is optional in the schema (it may come as a header) but every call here needs one.
        if name in required or name in ("auth_token", "current_token") or draw(st.booleans(), label=f"pass {name}"):
            arguments[name] = draw(valid_value(world, tool, name, properties[name]), label=name)
    return make_consistent(world, tool, arguments, draw)


def wrong_values(world, tool, arguments):
    """``[(name, strategy, codes)]``: well-formed values of one argument that this server must refuse.

    A strategy drawing None means: leave the argument out.
    """
    cases = []
    if "auth_token" in arguments:
        cases += [
            ("auth_token", st.none(), {"AUTH_REQUIRED"}),
            ("auth_token", st.just(world.tokens["forged"]), {"TOKEN_INVALID"}),
            ("auth_token", st.text(min_size=1, max_size=60), {"TOKEN_INVALID"}),
            ("auth_token", st.just(world.tokens["expired"]), {"TOKEN_EXPIRED"}),
        ]
        needed = world.permission.get(tool)
        if needed in ("write", "admin"):
            weaker = ["reader"] if needed == "write" else ["reader", "writer"]
            cases.append(("auth_token", st.sampled_from([world.tokens[t] for t in weaker]), {"PERMISSION_DENIED"}))
    if "current_token" in arguments:
        cases += [("current_token", st.just(world.tokens["forged"]), {"TOKEN_INVALID"}),
                  ("current_token", st.text(min_size=1, max_size=60), {"TOKEN_INVALID"})]
    if arguments.get("session_id") not in (None, "all"):
        unknown = st.text("0123456789abcdef", min_size=16, max_size=16).map("session_{}".format).filter(
            lambda sid: sid not in (world.session_id, world.other_session_id))
        malformed = st.text(min_size=1, max_size=64).filter(lambda t: not t.startswith("session_") and t != "all")
        missing_codes = {"MEMORY_NOT_FOUND"} if tool == "get_memory" else {"SESSION_NOT_FOUND"}
        cases += [("session_id", unknown, missing_codes), ("session_id", malformed, {"INVALID_SESSION_ID"})]
    blank = st.text(" \t\n\u3000", min_size=1, max_size=5)
    per_tool = {
        "add_message": [
            ("content", blank, {"INVALID_CONTENT"}),
            ("parent_message_id", st.sampled_from([foreign_parent(world, arguments), 2**62]), {"PARENT_NOT_FOUND"}),
        ],
        "create_session": [("purpose", blank, {"INVALID_PURPOSE"})],
        "search_context": [("query", st.text("!?-. ,;", min_size=1, max_size=8), {"INVALID_QUERY"})],
        "search_by_timerange": [
            ("start_time", st.sampled_from(["yesterday", "2026-13-45T99:99:99", "26/11/2026"]), {"INVALID_DATETIME"}),
            ("end_time", st.just("1900-01-01T00:00:00Z"), {"INVALID_TIME_RANGE"}),
        ],
        "get_messages": [("offset", st.integers(conf.get("SCS_MAX_OFFSET") + 1, 10**9), {"OFFSET_TOO_LARGE"})],
        "list_sessions": [("offset", st.integers(conf.get("SCS_MAX_OFFSET") + 1, 10**9), {"OFFSET_TOO_LARGE"})],
        "get_inbox": [("since", st.integers(10**6, 2**63 - 1), {"INVALID_ARGUMENT"})],  # past the newest mention
        "mark_read": [("seq", st.integers(10**6, 2**63 - 1), {"INVALID_ARGUMENT"})],  # past the newest message
        "wait_for_messages": [("since_seq", st.integers(6, 2**63 - 1), INVALID)],  # past the newest seq
        "set_memory": [
            ("value", st.sampled_from([math.nan, math.inf, [1, math.nan]]), {"INVALID_VALUE"}),
            ("value", st.just("x" * (conf.get("SCS_MAX_MEMORY_VALUE_BYTES") + 1)), {"VALUE_TOO_LARGE"}),
            ("metadata", st.just({"x": "y" * conf.get("SCS_MAX_METADATA_BYTES")}), {"METADATA_TOO_LARGE"}),
            ("metadata", st.just({"n": math.nan}), {"INVALID_METADATA"}),
        ],
        "get_memory": [("key", words().map("never-set-{}".format), {"MEMORY_NOT_FOUND"})],
    }
    if tool == "add_message":  # admin_only from an agent without admin (draw_call gives the writer's token)
        per_tool["add_message"].append(("visibility", st.just("admin_only"), {"PERMISSION_DENIED"}))
    return cases + per_tool.get(tool, [])


def foreign_parent(world, arguments):
    """A message id that exists, but in another session than the call's."""
    return world.other_message_id if arguments.get("session_id") == world.session_id else world.message_ids[0]


def draw_call(world, tool, schema, draw):
    """A call to ``tool``: valid seven times in ten, else broken in exactly one field."""
    arguments = valid_call(world, tool, schema, draw)
    roll = draw(st.integers(0, 99), label="roll")
    if roll < 70:
        return Call(arguments, "valid")
    properties, required = schema["properties"], sorted(set(schema.get("required", ())) & set(arguments))
    if roll >= 90 and not wrong_values(world, tool, arguments):
        roll = 75  # nothing well-formed can be wrong for this tool: break its schema instead
    if roll < 80:
        breakable = sorted(name for name in properties if schema_values.bad_values(properties[name]) is not None)
        name = draw(st.sampled_from(breakable), label="broken")
        arguments[name] = draw(schema_values.bad_values(properties[name]), label=f"bad {name}")
        return Call(arguments, "schema", INVALID, name)
    if roll < 85 or (roll < 90 and not required):
        name = draw(st.text(min_size=1, max_size=12).filter(lambda key: key not in properties), label="unknown")
        arguments[name] = draw(schema_values.JSON_VALUES, label="unknown value")
        return Call(arguments, "unknown", INVALID, "unknown key")
    if roll < 90:
        name = draw(st.sampled_from(required), label="left out")
        del arguments[name]
        return Call(arguments, "missing", INVALID, name)
    cases = wrong_values(world, tool, arguments)
    name, values, codes = draw(st.sampled_from(cases), label="wrong")
    value = draw(values, label=f"wrong {name}")
    if name == "session_id":
        arguments.pop("parent_message_id", None)  # a parent is only right in its own session
    if value is None:
        arguments.pop(name, None)
    else:
        arguments[name] = value
    if name == "visibility":
        arguments["auth_token"] = world.tokens["writer"]
    return Call(arguments, "wrong", frozenset(codes), name)


# What a successful answer holds, tool by tool (beyond "success": true).
MESSAGE_FIELDS = DATA_FIELDS | {"seq"}
TOKEN_FIELDS = {"token", "token_type", "agent_id", "agent_type", "permissions", "expires_at"}
MEMORY_FIELDS = {"key", "scope", "session_id", "expires_at"}
RESULT_FIELDS = {
    "authenticate_agent": TOKEN_FIELDS,
    "refresh_token": TOKEN_FIELDS | {"expires_in", "issued_at"},
    "create_session": {"session_id", "created_by", "created_at"},
    "get_session": {"session", "messages", "message_count", "has_more"},
    "add_message": {"message_id", "seq", "timestamp"},
    "get_messages": {"messages", "count", "has_more", "next_since_seq"},
    "search_context": {"query", "results", "message_count", "scanned", "truncated", "has_more", "search_time_ms"},
    "search_by_sender": {"sender", "messages", "count", "has_more", "next_before_seq"},
    "search_by_timerange": {"timerange", "messages", "count", "has_more", "next_since_seq"},
    "set_memory": MEMORY_FIELDS | {"session_scoped", "stored_at"},
    "get_memory": MEMORY_FIELDS | {"created_at", "updated_at", "value", "metadata"},
    "list_memory": {"entries", "count", "has_more", "scope_filter"},
    "get_usage_guidance": {"guidance_type", "access_level", "agent_info", "available_tools", "guidance"},
    "get_performance_metrics": {"timestamp", "uptime_seconds", "tools", "bridge", "wake", "database"},
    "get_inbox": {"messages", "count", "has_more", "cursor", "timed_out"},
    "mark_read": {"session_id", "read_seq"},
    "list_sessions": {"sessions", "count", "has_more"},
    "wait_for_messages": {"messages", "last_seq", "timed_out"},
}


def listed_messages(tool, answer):
    """The message records a successful read answer lists."""
    if tool == "search_context":
        return [result.get("message") for result in answer.get("results", [])]
    if tool == "get_inbox":  # each record also names its session
        return [{k: v for k, v in record.items() if k != "session_id"} if isinstance(record, dict) else record
                for record in answer.get("messages", [])]
    return answer.get("messages", [])


def check_shape(tool, answer):
    """Problems with a successful answer's shape (an empty list when it has the documented fields)."""
    problems = [f"no {name}" for name in sorted(RESULT_FIELDS[tool] - answer.keys())]
    messages = listed_messages(tool, answer)
    if not isinstance(messages, list):
        return [*problems, "messages is not a list"]
    for record in messages:
        if not isinstance(record, dict) or set(record) != MESSAGE_FIELDS:
            problems.append(f"message record with fields {sorted(record) if isinstance(record, dict) else record}")
    seqs = [record.get("seq") for record in messages if isinstance(record, dict)]
    if tool in ("get_messages", "search_by_timerange", "get_session", "wait_for_messages") and seqs != sorted(seqs):
        problems.append(f"messages not oldest first: {seqs}")
    if tool == "search_by_sender" and seqs != sorted(seqs, reverse=True):
        problems.append(f"messages not newest first: {seqs}")
    listed = {"list_memory": answer.get("entries"), "list_sessions": answer.get("sessions")}.get(tool, messages)
    for count in ("count", "message_count"):
        if count in answer and answer[count] != len(listed):
            problems.append(f"{count} {answer[count]} for {len(listed)} listed")
    return problems
