"""Property-based fuzzing of every input a client controls, in-process.

- MCP tool arguments, through the server's middleware and argument validation;
- bodies (and session ids and credentials) sent to the broadcast view;
- frames sent on a session WebSocket.

Whatever arrives, the answer is a clean refusal or a success: never an
exception, never a traceback in what the client sees, and a refused request
writes nothing (sessions, messages and memory rows are counted around every
call; audit rows recording refusals are expected). 10,100 cases in all by
default; ``SCS_FUZZ_SCALE=10`` runs ten times as many.
"""

import json
import logging
import os

import pytest
from asgiref.sync import sync_to_async
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from django.test import AsyncRequestFactory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from project.asgi import application
from realtime import operations, tokens
from realtime.models import MemoryEntry, Message, Session
from realtime.views.broadcast import broadcast

pytestmark = pytest.mark.django_db(transaction=True)

SCALE = float(os.environ.get("SCS_FUZZ_SCALE", "1"))
MCP_EXAMPLES_PER_TOOL = int(150 * SCALE)  # × 14 tools = 2,100
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
ADMIN_TOKEN = tokens.issue("fuzz-admin", "admin", ["read", "write", "admin"])[0]
EXPIRED_TOKEN = tokens.issue("fuzzer", "claude", ["read", "write"], ttl=-10)[0]


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


# MCP tool arguments


INTS = st.integers(min_value=-5, max_value=2**64) | st.sampled_from([0, 1, 2, 3, 50, 1000, 1001, 10**6, 10**9])
ARGUMENTS_BY_NAME = {
    "session_id": st.sampled_from([SESSION_ID] * 3 + ["session_0000000000000000", "all"]) | TEXT,
    "auth_token": st.sampled_from([TOKEN] * 4 + [ADMIN_TOKEN, EXPIRED_TOKEN, TOKEN[:-2], ""]) | TEXT,
    "current_token": st.sampled_from([TOKEN, EXPIRED_TOKEN, TOKEN + "x"]) | TEXT,
    "visibility": st.sampled_from(["public", "private", "agent_only", "admin_only", "PUBLIC", "secret"]),
    "visibility_filter": st.sampled_from(["public", "private", "agent_only", "admin_only", "everything"]),
    "search_scope": st.sampled_from(["all", "public", "private", "nope"]),
    "guidance_type": st.sampled_from(["operations", "coordination", "security", "troubleshooting", "x"]),
    "requested_permissions": st.lists(st.sampled_from(["read", "write", "admin", "root"]), max_size=5),
    "agent_type": st.sampled_from(["claude", "gemini", "admin", "unknown"]) | TEXT,
    "agent_id": st.from_regex(r"\A[A-Za-z0-9_.:@-]{1,20}\Z") | TEXT,
    "metadata": st.dictionaries(st.text(max_size=10), JSON, max_size=5) | st.builds(lambda: {"big": "x" * 20_000}),
    "value": JSON | st.builds(lambda: "x" * 300_000),
    "key": st.from_regex(r"\A[A-Za-z0-9_][A-Za-z0-9_.:/@+=-]{0,20}\Z") | TEXT,
    "start_time": st.sampled_from(["2000-01-01T00:00:00Z", "2026-13-45T99:99:99", "yesterday"]) | TEXT,
    "end_time": st.sampled_from(["2100-01-01T00:00:00Z", "1999-01-01", ""]) | TEXT,
    "fuzzy_threshold": st.floats(allow_nan=True, allow_infinity=True) | INTS,
    **{name: INTS for name in ("limit", "offset", "since_seq", "expires_in", "parent_message_id", "thread_id")},
    **{name: st.booleans() for name in ("search_metadata", "overwrite")},
}


def argument_strategy(name):
    """Plausible and hostile values for an argument called ``name`` (text for names added later)."""
    return ARGUMENTS_BY_NAME.get(name, TEXT) | JSON


TOOL_NAMES = [
    "authenticate_agent", "refresh_token", "create_session", "get_session", "add_message", "get_messages",
    "search_context", "search_by_sender", "search_by_timerange", "set_memory", "get_memory", "list_memory",
    "get_usage_guidance", "get_performance_metrics",
]
# What a successful call may add: (sessions, messages, memory entries).
MAY_ADD = {"create_session": {(1, 0, 0)}, "add_message": {(0, 1, 0)}, "set_memory": {(0, 0, 0), (0, 0, 1)}}


@pytest.fixture
def mcp(monkeypatch):
    from mcp_sidecar import auth, tools  # noqa: F401  (registers every tool)
    from mcp_sidecar.app import mcp
    from realtime.publisher import get_publisher

    published = []
    monkeypatch.setattr(get_publisher(), "publish", published.append)
    # In-process calls carry no HTTP request: admit them as stdio does without SCS_AGENT_KEY (the shared key).
    monkeypatch.setattr(auth, "_stdio", {"enabled": True, "key": ""})
    return mcp, published


CALL_STRATEGIES = {}  # tool -> strategy of argument dicts, built once per tool


async def call_strategy(server, name):
    if name not in CALL_STRATEGIES:
        tool = await server.get_tool(name)
        assert tool is not None, f"no tool {name}"
        names = sorted(tool.parameters.get("properties", {}))
        arguments = st.fixed_dictionaries({}, optional={n: argument_strategy(n) for n in names})
        extra = st.dictionaries(st.text(min_size=1, max_size=12).filter(lambda key: key not in names), JSON,
                                max_size=2)
        CALL_STRATEGIES[name] = st.tuples(arguments, st.none() | extra)
    return CALL_STRATEGIES[name]


@pytest.mark.parametrize("tool", TOOL_NAMES)
@fuzz_settings(MCP_EXAMPLES_PER_TOOL)
@given(data=st.data())
async def test_mcp_tool_arguments(mcp, world, tool, data):
    server, published = mcp
    arguments, extra = data.draw(await call_strategy(server, tool), label="arguments, extra")
    before, sent = await row_counts(), len(published)
    result = await server.call_tool(tool, {**arguments, **(extra or {})})
    answer = result.structured_content
    assert isinstance(answer, dict) and isinstance(answer.get("success"), bool), result
    assert_no_traceback(json.dumps(answer, default=str))
    after = await row_counts()
    added = tuple(a - b for a, b in zip(after, before, strict=True))
    if answer["success"]:
        assert added in MAY_ADD.get(tool, {(0, 0, 0)}), (tool, added)
        assert len(published) - sent == (1 if tool == "add_message" else 0)
    else:
        assert answer["code"] and answer["error"], answer
        assert added == (0, 0, 0), (tool, arguments, answer)  # a refusal writes nothing
        assert len(published) == sent


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
