"""Property-based fuzzing of every input a client controls, in-process.

- MCP tool calls, through the server's middleware and argument validation:
  mostly valid calls derived from each tool's input schema, the rest broken in
  exactly one field (``tests/tool_calls.py``). A valid call succeeds with the
  documented answer and its effect is visible (the message reads back, the
  memory is set); a broken one gets ``success: false`` with the expected
  ``code`` and a ``hint`` and writes nothing. At least half of each tool's
  calls must succeed, so the success path cannot silently stop running; run
  with ``--hypothesis-show-statistics`` to see the outcome mix.
- bodies (and session ids and credentials) sent to the broadcast door, through
  the ASGI application as Daphne routes it and through the Django fallback
  view: a body is accepted exactly when an independent reading of the README's
  envelope contract says it is valid.
- frames sent on a session WebSocket.

Nothing ever answers with an exception or a traceback. ``SCS_FUZZ_SCALE=10``
runs ten times as many cases.
"""

import asyncio
import collections
import json
import logging
import os

import pytest
from asgiref.sync import sync_to_async
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from django.test import AsyncRequestFactory
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from project.asgi import application
from realtime import memory, operations, tokens
from realtime.models import MemoryEntry, Message, Session
from realtime.signals import message_stored
from realtime.views.broadcast import broadcast
from realtime.visibility import Viewer, can_see_message
from tests import tool_calls

pytestmark = pytest.mark.django_db(transaction=True)

SCALE = float(os.environ.get("SCS_FUZZ_SCALE", "1"))
MCP_EXAMPLES_PER_TOOL = int(60 * SCALE)  # × 14 tools = 840, seven in ten valid
BROADCAST_EXAMPLES = int(5000 * SCALE)
FRAME_EXAMPLES = int(3000 * SCALE)
SECRET = "broadcast-secret-for-fuzzing"
ORIGIN = b"http://127.0.0.1:8081"
TRACEBACK_SIGNS = ("Traceback", 'File "/', "site-packages")


def fuzz_settings(examples):
    return settings(max_examples=examples, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large, HealthCheck.filter_too_much])


JSON_SCALARS = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
                | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=40))
JSON = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=12)
NASTY_TEXT = st.sampled_from([
    "", " ", "\x00", "<script>alert(1)</script>", "' OR 1=1 --", "%s%s%n", "../../etc/passwd", "\u202e\ufeff",
    "𝕏" * 50, "a" * 1001, "session_0123456789abcdef", "session_ZZZ", "null", "{}", "NaN",
]) | st.builds(lambda: "x" * 100_001)  # built, not listed: keeps the strategy's repr short
TEXT = st.text(max_size=200) | NASTY_TEXT


SESSION_ID = "session_00000000000f0220"  # fixed, so every strategy is built once, not per example
TOKEN = tokens.issue("fuzzer", "claude", ["read", "write"])[0]


@pytest.fixture(autouse=True)
def quiet_and_fresh(settings):
    settings.SCS_BROADCAST_SECRET = SECRET
    settings.SCS_WS_FRAME_RATE = 10**6  # the rate limit has its own tests
    settings.SCS_WS_FRAME_BURST = 10**6
    channel_layers.backends = {}
    loggers = [logging.getLogger(name) for name in ("fastmcp", "mcp", "django.request", "realtime")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)  # thousands of expected refusals
    yield
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)
    channel_layers.backends = {}


@sync_to_async
def row_counts():
    return Session.objects.count(), Message.objects.count(), MemoryEntry.objects.count()


def assert_no_traceback(text):
    for sign in TRACEBACK_SIGNS:
        assert sign not in text, text[:2000]


@pytest.fixture
def world(db):
    session = Session.objects.create(id=SESSION_ID, purpose="fuzzing", created_by="fuzzer")
    operations.add_message(session.id, sender="fuzzer", sender_type="claude", content="first")
    for visibility in ("private", "agent_only", "admin_only"):
        operations.add_message(session.id, sender="fuzzer", sender_type="claude", content=visibility,
                               visibility=visibility, may_write_admin_only=True)
    return {"counts": (Session.objects.count(), Message.objects.count(), MemoryEntry.objects.count())}


@pytest.fixture
async def rows_unchanged(world):
    """For read-only doors: after all the examples, not one row was added or removed."""
    yield
    assert await row_counts() == world["counts"]


# MCP tool calls (generated by tests/tool_calls.py from each tool's input schema)


TOOL_NAMES = [
    "authenticate_agent", "refresh_token", "create_session", "get_session", "add_message", "get_messages",
    "search_context", "search_by_sender", "search_by_timerange", "set_memory", "get_memory", "list_memory",
    "get_usage_guidance", "get_performance_metrics",
]
# What a successful call adds: (sessions, messages, memory entries).
ADDS = {"create_session": {(1, 0, 0)}, "add_message": {(0, 1, 0)}, "set_memory": {(0, 0, 0), (0, 0, 1)}}
MIN_SUCCESS_SHARE = 0.5  # of each tool's calls, so that the success path cannot silently stop running


@pytest.fixture
def tool_world(db, settings, monkeypatch):
    """The MCP server in-process, with two sessions, messages, memory and tokens to call it with."""
    from mcp_sidecar import auth, tools  # noqa: F401  (registers every tool)
    from mcp_sidecar.app import mcp
    from mcp_sidecar.ratelimit import tool_limits
    from mcp_sidecar.tools.guidance import TOOL_PERMISSIONS

    settings.SCS_TOOL_RATE = settings.SCS_TOOL_BURST = 10**6  # limits have their own tests
    settings.SCS_MAX_SESSIONS_PER_HOUR = 10**6
    monkeypatch.setattr(tool_limits, "buckets", collections.OrderedDict())
    # In-process calls carry no HTTP request: admit them as stdio does without SCS_AGENT_KEY (the shared key).
    monkeypatch.setattr(auth, "_stdio", {"enabled": True, "key": ""})
    published = Published()

    def on_stored(sender, event, **kwargs):
        published.append(event)

    message_stored.connect(on_stored, dispatch_uid="fuzz")
    writer = tokens.issue("fuzzer", "claude", ["read", "write"])[0]
    admin = tokens.issue("fuzz-admin", "admin", ["read", "write", "admin"])[0]
    sessions = [Session.objects.create(purpose=f"fuzzing {n}", created_by="fuzzer").id for n in range(2)]
    message_ids = [operations.add_message(sessions[0], sender=sender, sender_type=kind, content=f"{level} note",
                                          visibility=level, may_write_admin_only=True).id
                   for sender, kind, level in [("fuzzer", "claude", "public"), ("fuzzer", "claude", "private"),
                                               ("other", "gemini", "private"), ("other", "gemini", "agent_only"),
                                               ("fuzz-admin", "admin", "admin_only")]]
    other = operations.add_message(sessions[1], sender="other", sender_type="gemini", content="elsewhere").id
    entries = {}
    for token in (writer, admin):
        agent_id = tokens.verify(token).agent_id
        for key, session_id in (("notes", None), ("plan:1", sessions[0])):
            memory.set_memory(agent_id, key, {"step": 1}, session_id=session_id)
        entries[token] = [("notes", None), ("plan:1", sessions[0])]
    world = tool_calls.World(
        session_id=sessions[0], other_session_id=sessions[1], message_ids=message_ids, other_message_id=other,
        memory=entries, permission=TOOL_PERMISSIONS,
        tokens={"writer": writer, "admin": admin, "reader": tokens.issue("fuzz-reader", "claude", ["read"])[0],
                "expired": tokens.issue("fuzzer", "claude", ["read", "write"], ttl=-10)[0],
                "forged": writer[:-6] + ("AAAAAA" if not writer.endswith("AAAAAA") else "BBBBBB")},
        issue=lambda: tokens.issue("fuzz-refresher", "claude", ["read", "write"])[0],
    )
    yield mcp, world, published
    message_stored.disconnect(dispatch_uid="fuzz")


class Published(list):
    """Events stored messages announced (kept short in hypothesis's reports)."""

    def __repr__(self):
        return f"<{len(self)} events>"


def sync_row_counts():
    return Session.objects.count(), Message.objects.count(), MemoryEntry.objects.count()


class ToolCaller:
    """Calls tools of the in-process server from synchronous code (hypothesis drives the examples)."""

    def __init__(self, server):
        self.server = server
        self.runner = asyncio.Runner()
        self.schemas = {}

    def __call__(self, tool, arguments):
        answer = self.runner.run(self.server.call_tool(tool, arguments)).structured_content
        assert isinstance(answer, dict) and isinstance(answer.get("success"), bool), (tool, answer)
        assert_no_traceback(json.dumps(answer, default=str))
        return answer

    def schema(self, tool):
        """The tool's input schema, as tools/list publishes it."""
        if tool not in self.schemas:
            self.schemas.update((t.name, t.parameters) for t in self.runner.run(self.server.list_tools()))
        return self.schemas[tool]


def check_visible(tool, answer, token):
    """Every message a read returns is one its caller may see."""
    claims = tokens.verify(token)
    viewer = Viewer.for_agent(claims.agent_id, claims.agent_type, claims.permissions)
    for record in tool_calls.listed_messages(tool, answer):
        assert can_see_message(viewer, record), (tool, claims.agent_id, record)


def check_effect(call_tool, tool, arguments, answer, published):
    """A write's effect is visible: the session exists, the message reads back, the memory is set."""
    token = arguments.get("auth_token")
    if tool == "create_session":
        assert Session.objects.filter(pk=answer["session_id"], purpose=arguments["purpose"].strip(),
                                      created_by=tokens.verify(token).agent_id).exists(), answer
    elif tool == "add_message":
        read = call_tool("get_messages", {"session_id": arguments["session_id"], "since_seq": answer["seq"] - 1,
                                          "limit": 1, "auth_token": token})
        assert read["success"] and len(read["messages"]) == 1, read
        stored = read["messages"][0]
        expected = {"id": answer["message_id"], "seq": answer["seq"], "content": arguments["content"],
                    "visibility": arguments.get("visibility", "public"), "metadata": arguments.get("metadata") or {},
                    "parent_message_id": arguments.get("parent_message_id")}
        assert {name: stored[name] for name in expected} == expected, (stored, arguments)
        assert [(e["session_id"], e["seq"]) for e in published[-1:]] == [(arguments["session_id"], answer["seq"])]
    elif tool == "set_memory":
        scope = {"session_id": arguments["session_id"]} if arguments.get("session_id") else {}
        read = call_tool("get_memory", {"key": arguments["key"], **scope, "auth_token": token})
        assert read["success"], read
        assert (read["value"], read["metadata"]) == (arguments["value"], arguments.get("metadata") or {}), read
    elif tool == "authenticate_agent":
        claims = tokens.verify(answer["token"])
        assert (claims.agent_id, claims.agent_type) == (arguments["agent_id"], arguments["agent_type"])
        assert set(claims.permissions) <= set(arguments.get("requested_permissions", ["read", "write"]))
    elif tool == "refresh_token":
        assert call_tool("get_usage_guidance", {"auth_token": answer["token"]})["success"]
        old = call_tool("get_usage_guidance", {"auth_token": arguments["current_token"]})
        assert old["code"] == "TOKEN_REVOKED", old


@pytest.fixture
def tool_caller(tool_world):
    caller = ToolCaller(tool_world[0])
    yield caller
    caller.runner.close()


@pytest.fixture
def outcomes(tool):
    """Counts (kind, outcome) over all of a tool's examples; at the end, enough of them must have succeeded."""
    counted = collections.Counter()
    yield counted
    calls = sum(counted.values())
    assert counted["valid", "ok"] >= MIN_SUCCESS_SHARE * calls, (tool, counted)
    assert any(kind != "valid" for kind, _ in counted), (tool, counted)


@pytest.mark.parametrize("tool", TOOL_NAMES)
@fuzz_settings(MCP_EXAMPLES_PER_TOOL)
@given(data=st.data())
def test_mcp_tool_calls(tool_world, tool_caller, outcomes, tool, data):
    _, world, published = tool_world
    call = tool_calls.draw_call(world, tool, tool_caller.schema(tool), data.draw)
    before, sent = sync_row_counts(), len(published)
    answer = tool_caller(tool, call.arguments)
    outcome = "ok" if answer["success"] else answer.get("code")
    event(f"{call.kind}: {outcome}")
    outcomes[call.kind, outcome] += 1
    added = tuple(a - b for a, b in zip(sync_row_counts(), before, strict=True))
    if call.kind == "valid":
        assert answer["success"] is True, (call, answer)
        assert not tool_calls.check_shape(tool, answer), (tool_calls.check_shape(tool, answer), answer)
        assert added in ADDS.get(tool, {(0, 0, 0)}), (tool, added)
        assert len(published) - sent == (tool == "add_message")
        if "auth_token" in call.arguments:
            check_visible(tool, answer, call.arguments["auth_token"])
        check_effect(tool_caller, tool, call.arguments, answer, published)
    else:
        assert answer["success"] is False, (call, answer)
        assert answer.get("code") in call.expect, (call, answer)
        assert isinstance(answer.get("error"), str) and answer["error"], answer
        assert isinstance(answer.get("hint"), str) and answer["hint"], answer
        assert added == (0, 0, 0) and len(published) == sent, (call, added)  # a refusal writes nothing


# Broadcast view bodies

factory = AsyncRequestFactory()


SESSION_IDS = st.sampled_from([SESSION_ID, "session_00000000000000ff"]) | TEXT
ODD_BODIES = [b"", b"{", b"[]", b'{"events": []}', b"\xff\xfe", b"null", b'"x"', b"1e999999"]
HUGE_BODY = b"0" * 5_000_000
EVENT = st.fixed_dictionaries(
    {"type": st.just("new_message") | JSON, "session_id": SESSION_IDS | JSON,
     "seq": st.integers(min_value=-3, max_value=2**70) | JSON,
     "data": st.fixed_dictionaries(
         {"id": st.integers(1, 10**6) | JSON, "sender": TEXT, "sender_type": TEXT, "content": TEXT,
          "visibility": st.sampled_from(["public", "private", "admin_only"]) | JSON,
          "metadata": st.dictionaries(st.text(max_size=5), JSON, max_size=3) | JSON,
          "parent_message_id": st.none() | JSON, "timestamp": TEXT}) | JSON},
    optional={"extra": JSON},
)
BODIES = (
    (EVENT | st.fixed_dictionaries({"events": st.lists(EVENT, max_size=4) | JSON})).map(
        lambda value: json.dumps(value).encode())
    | JSON.map(lambda value: json.dumps(value).encode())
    | st.binary(max_size=300)
    # Odd bodies, and now and then one over the size limit.
    | st.integers(0, 24).map(lambda n: HUGE_BODY if n == 0 else ODD_BODIES[n % len(ODD_BODIES)])
)
AUTHORIZATIONS = st.sampled_from([f"Bearer {SECRET}"] * 4 + ["", f"Bearer {SECRET}x", "Basic abc", SECRET])


@pytest.mark.parametrize("half", [1, 2])
@fuzz_settings(BROADCAST_EXAMPLES // 2)
@given(url_session_id=SESSION_IDS, body=BODIES, authorization=AUTHORIZATIONS,
       method=st.sampled_from(["POST"] * 9 + ["GET", "PUT"]),
       content_type=st.sampled_from(["application/json", "text/plain", ""]))
async def test_broadcast_bodies(rows_unchanged, half, url_session_id, body, authorization, method, content_type):
    request = factory.generic(method, f"/broadcast/{url_session_id}", data=body, content_type=content_type,
                              headers={"Authorization": authorization} if authorization else {})
    response = await broadcast(request, url_session_id)
    assert response.status_code in (202, 400, 401, 403, 404, 405, 413), response.status_code
    if method == "POST":
        assert json.loads(response.content)["success"] is (response.status_code == 202)
    assert_no_traceback(response.content.decode("utf-8", "replace"))


# WebSocket frames


class Connection:
    """One authenticated viewer; reconnects when a frame made the server close it."""

    comm = None

    async def open(self):
        self.comm = WebsocketCommunicator(application, f"/ws/{SESSION_ID}/", headers=[
            (b"origin", ORIGIN), (b"authorization", f"Bearer {TOKEN}".encode())])
        connected, _ = await self.comm.connect(timeout=5)
        assert connected
        frames = await self.until("caught_up")
        assert frames[0]["type"] == "hello"

    async def until(self, kind):
        """Frames up to one of type ``kind``; ``[{"closed": code}]`` at the end if the server closed."""
        frames = []
        while True:
            output = await self.comm.receive_output(timeout=5)
            if output["type"] == "websocket.close":
                frames.append({"closed": output.get("code")})
                return frames
            assert output["type"] == "websocket.send", output
            frames.append(json.loads(output["text"]))
            if frames[-1].get("type") == kind:
                return frames

    async def close(self):
        if self.comm is not None:
            await self.comm.disconnect()
            self.comm = None


FRAME_KINDS = ["hello", "caught_up", "new_message", "error", "pong", "presence"]


@pytest.fixture
async def connection(world):
    opened = Connection()
    yield opened
    await opened.close()


FRAMES = (
    st.fixed_dictionaries({"type": st.sampled_from(["resume", "ping", "who", "auth", "nope", ""]) | JSON},
                          optional={"since": st.integers(min_value=-3, max_value=2**70) | JSON,
                                    "token": TEXT | st.just(TOKEN), "x": JSON})
    .map(json.dumps)
    | JSON.map(json.dumps)
    | TEXT
    | st.binary(max_size=100)
    | st.integers(16_385, 20_000).map(lambda n: json.dumps({"type": "ping", "pad": "x" * n}))
)


def is_ping(frame):
    """True when the server answers ``frame`` itself with a pong."""
    if not isinstance(frame, str) or len(frame) > 16_384:
        return False
    try:
        parsed = json.loads(frame)
    except ValueError:
        return False
    return isinstance(parsed, dict) and parsed.get("type") == "ping"


@fuzz_settings(FRAME_EXAMPLES)
@given(frame=FRAMES)
async def test_websocket_frames(rows_unchanged, connection, frame):
    if connection.comm is None:
        await connection.open()
    kind = "bytes" if isinstance(frame, bytes) else "text"
    await connection.comm.send_input({"type": "websocket.receive", kind: frame})  # empty frames too
    await connection.comm.send_to(text_data='{"type":"ping"}')
    answers = await connection.until("pong")
    if is_ping(frame) and "closed" not in answers[-1]:  # the frame's own pong came first
        answers += await connection.until("pong")
    for answer in answers:
        if "closed" in answer:  # only an oversized frame may end the connection
            assert answer["closed"] == 1009 and len(frame) > 16_384, (frame[:100], answers)
            await connection.close()
            connection.comm = None
            return
        assert answer["type"] in FRAME_KINDS, answer
        assert_no_traceback(json.dumps(answer))
    assert answers[-1] == {"type": "pong"}
    assert [a["type"] for a in answers].count("pong") == 1 + is_ping(frame)
