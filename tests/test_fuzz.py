"""Property-based fuzzing of every input a client controls, in-process.

- MCP tool calls, through the server's middleware and argument validation:
  mostly valid calls derived from each tool's input schema, the rest broken in
  exactly one field (``tests/tool_calls.py``). A valid call succeeds with the
  documented answer and its effect is visible (the message reads back, the
  memory is set); a broken one gets ``success: false`` with the expected
  ``code`` and a ``hint`` and writes nothing. At least three in ten of each tool's
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
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from asgiref.sync import sync_to_async
from asgiref.testing import ApplicationCommunicator
from channels.testing import HttpCommunicator, WebsocketCommunicator
from django.test import AsyncRequestFactory
from hypothesis import HealthCheck, event, example, given, settings
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
MCP_EXAMPLES_PER_TOOL = int(75 * SCALE)  # × 17 tools = 1,275 calls, seven in ten valid
DOOR_EXAMPLES = int(2000 * SCALE)  # the Channels door, in two halves
VIEW_EXAMPLES = int(1000 * SCALE)  # the Django fallback view
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
def quiet_and_fresh(settings, fresh_channel_layer):
    settings.SCS_BROADCAST_SECRET = SECRET
    settings.SCS_WS_FRAME_RATE = 10**6  # the rate limit has its own tests
    settings.SCS_WS_FRAME_BURST = 10**6
    loggers = [logging.getLogger(name) for name in ("fastmcp", "mcp", "django.request", "realtime")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)  # thousands of expected refusals
    yield
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)


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
    "get_usage_guidance", "get_performance_metrics", "get_inbox", "mark_read", "list_sessions",
    "wait_for_messages",
]
# What a successful call adds: (sessions, messages, memory entries).
ADDS = {"create_session": {(1, 0, 0)}, "add_message": {(0, 1, 0)}, "set_memory": {(0, 0, 0), (0, 0, 1)}}
MIN_SUCCESS_SHARE = 0.3  # of each tool's calls (seven in ten are valid): the success path cannot silently stop


@pytest.fixture
def tool_world(db, settings, monkeypatch):
    """The MCP server in-process, with two sessions, messages, memory and tokens to call it with."""
    from mcp_sidecar import auth, tools  # noqa: F401  (registers every tool)
    from mcp_sidecar.app import mcp
    from mcp_sidecar.ratelimit import tool_limits
    from mcp_sidecar.tools.guidance import TOOL_PERMISSIONS
    from realtime.publisher import get_publisher

    settings.SCS_TOOL_RATE = settings.SCS_TOOL_BURST = 10**6  # limits have their own tests
    settings.SCS_MAX_SESSIONS_PER_HOUR = 10**6
    monkeypatch.setattr(tool_limits, "buckets", collections.OrderedDict())
    # In-process calls carry no HTTP request: admit them as stdio does without SCS_AGENT_KEY (the shared key).
    monkeypatch.setattr(auth, "_stdio", {"enabled": True, "key": ""})
    monkeypatch.setattr(get_publisher(), "publish", lambda event: None)  # no Daphne here; the signal still says
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


# Broadcast bodies: the Channels door Daphne routes first, and the Django fallback view


LEVELS = ("public", "private", "agent_only", "admin_only")
ENVELOPE_KEYS = {"type", "session_id", "seq", "data"}
DATA_KEYS = {"id", "sender", "sender_type", "content", "visibility", "metadata", "parent_message_id", "timestamp"}
STATE_KEYS = {"type", "session_id", "data"}
STATE_DATA_KEYS = {"is_active", "purpose"}
BIGINT = 2**63 - 1  # seqs and ids are database bigints
ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})")
SESSION_ID_FORM = re.compile(r"session_[0-9a-f]{16}")
MAX_BODY = 4 * 1024 * 1024  # the README's limit for broadcast bodies
MAX_EVENTS = 1000


def is_id(value):
    return type(value) is int and 1 <= value <= BIGINT


def is_time(value):
    if not isinstance(value, str) or not ISO_TIME.fullmatch(value):
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:  # e.g. month 13
        return False
    return True


def state_is_valid(event, session_id):
    """The README's ``session_state`` event, read on its own."""
    if set(event) != STATE_KEYS:
        return False
    data = event["data"]
    return (event["session_id"] == session_id and isinstance(data, dict) and set(data) == STATE_DATA_KEYS
            and type(data["is_active"]) is bool and isinstance(data["purpose"], str))


def envelope_is_valid(event, session_id):
    """The README's event envelope, read on its own (not through realtime.envelope)."""
    if isinstance(event, dict) and event.get("type") == "session_state":
        return state_is_valid(event, session_id)
    if not isinstance(event, dict) or set(event) != ENVELOPE_KEYS:
        return False
    data = event["data"]
    return (event["type"] == "new_message" and event["session_id"] == session_id and is_id(event["seq"])
            and isinstance(data, dict) and set(data) == DATA_KEYS and is_id(data["id"])
            and all(isinstance(data[name], str) for name in ("sender", "sender_type", "content"))
            and isinstance(data["visibility"], str) and data["visibility"] in LEVELS
            and isinstance(data["metadata"], dict)
            and (data["parent_message_id"] is None or is_id(data["parent_message_id"]))
            and is_time(data["timestamp"]))


def body_is_valid(body, session_id):
    """One envelope, or ``{"events": [...]}`` holding 1 to 1,000 of them, all for ``session_id``."""
    if len(body) > MAX_BODY:
        return False
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        return False
    if isinstance(parsed, dict) and set(parsed) == {"events"}:
        events = parsed["events"]
        return isinstance(events, list) and 1 <= len(events) <= MAX_EVENTS and all(
            envelope_is_valid(event, session_id) for event in events)
    return envelope_is_valid(parsed, session_id)


def expected_statuses(method, authorization, session_id, body, *, several=False):
    """The answers the README allows for this request (202 only for a valid body to an existing session)."""
    if method != "POST":
        return {405}
    scheme, _, credential = authorization.partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        return {401}
    if credential.strip() != SECRET:
        return {403}
    if several:  # POST /broadcast/, the several-session door: these one-session bodies do not fit it
        return {413} if len(body) > MAX_BODY else {400}
    if not SESSION_ID_FORM.fullmatch(session_id):
        return {400}
    if not body_is_valid(body, session_id):
        return {400, 413}
    return {202} if session_id == SESSION_ID else {404}


def timestamps():
    moments = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1),
                           timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))]))
    return moments.map(lambda moment: moment.isoformat().replace("+00:00", "Z"))


def envelopes(session_id):
    data = st.fixed_dictionaries({
        "id": st.integers(1, BIGINT), "sender": TEXT, "sender_type": st.text(max_size=20), "content": TEXT,
        "visibility": st.sampled_from(LEVELS), "metadata": st.dictionaries(st.text(max_size=5), JSON, max_size=3),
        "parent_message_id": st.none() | st.integers(1, BIGINT), "timestamp": timestamps(),
    })
    messages = st.fixed_dictionaries({"type": st.just("new_message"), "session_id": st.just(session_id),
                                      "seq": st.integers(1, BIGINT), "data": data})
    states = st.fixed_dictionaries({"type": st.just("session_state"), "session_id": st.just(session_id),
                                    "data": st.fixed_dictionaries({"is_active": st.booleans(), "purpose": TEXT})})
    return st.integers(0, 9).flatmap(lambda n: states if n == 0 else messages)  # one in ten a session_state


# Values just outside the contract, field by field (besides any JSON value).
NEAR_MISSES = {
    "type": ["New_message", "message", ""],
    "session_id": ["session_00000000000000ff", "session_00000000000F0220", SESSION_ID + " "],
    "seq": [0, -1, BIGINT + 1, 2**70, 1.0, True, "1"],
    "id": [0, -1, BIGINT + 1, 1.5, True, "42"],
    "visibility": ["PUBLIC", "secret", "", "public "],
    "parent_message_id": [0, -1, BIGINT + 1, "1", 2.0, False],
    "timestamp": ["", "yesterday", "2026-11-26", "2026-11-26T09:00:00", "2026-11-26 09:00:00Z", "20261126T090000Z",
                  "2026-13-01T00:00:00Z", "2026-11-26T09:00Z", "2026-11-26T09:00:00.1234567Z", "2026-11-26T25:00:00Z"],
    "metadata": [[], "x", None],
    "sender": [None, 1, ["a"]],
    "content": [None, 0, {"text": "x"}],
    "is_active": [0, 1, "true", None],
    "purpose": [None, 1, ["a"]],
}


@st.composite
def one_change(draw, event):
    """``event`` with exactly one field dropped, added, or given another value (perhaps still a valid one)."""
    event = {**event, "data": dict(event["data"])}
    target = draw(st.sampled_from([event, event["data"]]), label="level")
    change = draw(st.sampled_from(["drop", "add", "replace"]), label="change")
    if change == "add":
        target[draw(st.text(max_size=10), label="new key")] = draw(JSON, label="new value")
        return event
    name = draw(st.sampled_from(sorted(target)), label="field")
    if change == "drop":
        del target[name]
    else:
        target[name] = draw(st.sampled_from(NEAR_MISSES.get(name, [None])) | JSON, label="value")
    return event


@st.composite
def broadcast_bodies(draw, session_id):
    """Bytes to POST for ``session_id``: mostly envelopes (valid, or changed in one field), else anything."""
    def one_event():
        valid = draw(envelopes(session_id), label="envelope")
        return valid if draw(st.integers(0, 9), label="keep") < 7 else draw(one_change(valid), label="changed")

    form = draw(st.integers(0, 39), label="form")
    if form < 20:
        return json.dumps(one_event()).encode()
    if form < 28:
        return json.dumps({"events": [one_event() for _ in range(draw(st.integers(1, 4), label="events"))]}).encode()
    if form < 30:
        batch = draw(st.sampled_from([{"events": []}, {"events": {}}, {"events": None}]), label="batch")
        if draw(st.booleans(), label="and more"):
            batch = {"events": [one_event()], "x": 1}
        return json.dumps(batch).encode()
    if form < 32:
        return json.dumps(draw(JSON, label="json")).encode()
    if form < 34:
        return draw(st.binary(max_size=300), label="bytes")
    if form == 34:
        return json.dumps(one_event()).encode() + b" " * (MAX_BODY + 1)  # valid JSON, over the limit
    return draw(st.sampled_from([b"", b"{", b"[]", b"\xff\xfe", b"null", b'"x"', b"1e999999", b"[" * 100_000]),
                label="odd")


URL_SESSION_IDS = st.integers(0, 9).flatmap(  # mostly the session the test created
    lambda n: st.just(SESSION_ID) if n < 7 else st.just("session_00000000000000ff") if n == 7 else TEXT)
AUTHORIZATIONS = st.sampled_from([f"Bearer {SECRET}"] * 12 + [f"bearer {SECRET}", "", f"Bearer {SECRET}x", "Basic abc",
                                                              SECRET, "Bearer "])
METHODS = st.sampled_from(["POST"] * 19 + ["GET", "PUT"])


@st.composite
def broadcast_requests(draw):
    session_id = draw(URL_SESSION_IDS, label="url session id")
    return (draw(METHODS, label="method"), draw(AUTHORIZATIONS, label="authorization"), session_id,
            draw(broadcast_bodies(session_id), label="body"))


class DoorCommunicator(HttpCommunicator):
    """An HTTP request to the ASGI application with the addresses Daphne puts in the scope."""

    def __init__(self, method, path, body, headers):
        self.scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
                      "scheme": "http", "path": path, "raw_path": path.encode("utf-8", "replace"),
                      "query_string": b"", "root_path": "", "headers": headers,
                      "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8081)}
        self.body = body
        self.sent_request = False
        ApplicationCommunicator.__init__(self, application, self.scope)


def routed_to_door(session_id):
    """True when project.asgi sends /broadcast/<session_id> to the Channels consumer (else Django answers);
    with no session id, to the several-session door."""
    return len(session_id) <= 64 and "/" not in session_id


@pytest.fixture
def accepted():
    """Counts answers over all examples; at the end, enough requests must have been accepted."""
    counted = collections.Counter()
    yield counted
    assert counted[202] >= 0.1 * sum(counted.values()), counted


@pytest.mark.parametrize("half", [1, 2])
@fuzz_settings(DOOR_EXAMPLES // 2)
@given(call=broadcast_requests())
# POST /broadcast/ is the several-session door: refused for one session's body, 413 past the limit.
@example(call=("POST", f"Bearer {SECRET}", "", b'{"events": []}'))
@example(call=("POST", f"Bearer {SECRET}", "", b"{}" + b" " * (MAX_BODY + 1)))
async def test_broadcast_door(rows_unchanged, accepted, half, call):
    method, authorization, session_id, body = call
    headers = [(b"content-type", b"application/json")]
    if authorization:
        headers.append((b"authorization", authorization.encode()))
    answer = await DoorCommunicator(method, f"/broadcast/{session_id}", body, headers).get_response(timeout=10)
    status, text = answer["status"], answer["body"].decode("utf-8", "replace")
    event(f"door: {status}")
    accepted[status] += 1
    assert_no_traceback(text)
    through_django = any(name.lower() == b"x-frame-options" for name, _ in answer["headers"])  # its middleware
    if routed_to_door(session_id):
        assert not through_django, "the broadcast door must be served ahead of Django"
        expected = expected_statuses(method, authorization, session_id, body, several=not session_id)
        assert status in expected, (status, text, call)
        assert json.loads(text)["success"] is (status == 202), text
    else:  # Django's routes: never accepted, never a server error
        assert status in (400, 401, 403, 404, 405), (status, call)


factory = AsyncRequestFactory()


@fuzz_settings(VIEW_EXAMPLES)
@given(call=broadcast_requests())
@example(call=("POST", f"Bearer {SECRET}", "", b"{}" + b" " * (MAX_BODY + 1)))  # a bad id first, whatever the size
async def test_broadcast_fallback_view(rows_unchanged, accepted, call):
    method, authorization, session_id, body = call
    request = factory.generic(method, "/broadcast/x", data=body, content_type="application/json",
                              headers={"Authorization": authorization} if authorization else {})
    response = await broadcast(request, session_id)
    event(f"view: {response.status_code}")
    accepted[response.status_code] += 1
    assert response.status_code in expected_statuses(method, authorization, session_id, body), (
        response.status_code, response.content[:300], call)
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
