"""Who may open which door: every door × every caller, against the real processes.

Doors: each MCP tool, resource and prompt; ``POST /broadcast/``; the session and
dashboard WebSockets; each page and the admin. Callers: no credential, a wrong
key, a forged token, an expired token, an agent of another type, a signed-in
non-staff user, a staff user, an admin. The MCP doors also face callers admitted
by an agent key (``KEY_CALLERS``): the key's own agent, a client on one agent's
key presenting another agent's token (and the shared key presenting a keyed
agent's token), a revoked or expired key, a token whose key was revoked or
expired, and a token refreshed away. Each table below says what every cell must
answer; a cell that answers anything else fails with its door and caller.
"""

import asyncio
import json
import re
import time
from dataclasses import dataclass

import httpx
import pytest
import websockets
from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport

from tests.helpers import sign_in, signed_token

CALLERS = ["none", "wrong_key", "forged_token", "expired_token", "other_type_agent", "user", "staff", "admin"]
KEY_CALLERS = ["keyed_agent", "key_mismatch", "shared_keyed_token", "revoked_key", "expired_key",
               "revoked_key_token", "expired_key_token", "refreshed_token"]
MCP_CALLERS = CALLERS + KEY_CALLERS
AUTH_CODES = {"API_KEY_REQUIRED", "AUTH_REQUIRED", "TOKEN_INVALID", "TOKEN_EXPIRED", "PERMISSION_DENIED",
              "TOKEN_REVOKED", "IDENTITY_MISMATCH", "AGENT_KEY_REQUIRED"}
ERROR_CODES = AUTH_CODES | {"SESSION_NOT_FOUND", "INVALID_SESSION_ID"}
PASSWORD = "a-long-password-for-tests"


@dataclass
class Caller:
    name: str
    api_key: str | None = None  # X-API-Key for the sidecar
    token: str | None = None  # presented as Authorization: Bearer (and as auth_token to tools)
    cookie: str | None = None  # a Django session cookie from signing in
    admitted: bool = True  # whether its key opens the MCP endpoint (else every request is a bare 401)
    spare: str | None = None  # another token of the same agent: refresh_token retires what it refreshes
    auth_as: tuple = ("authz-probe", "claude")  # what it asks authenticate_agent for

    @property
    def ws_headers(self):
        headers = {}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.cookie:
            headers["Cookie"] = f"sessionid={self.cookie}"
        return headers


@dataclass
class World:
    session_id: str
    owner_token: str
    callers: dict
    broadcast_secret: str


def session_cookie(stack, username):
    return sign_in(stack.http_url, username, PASSWORD)["sessionid"]


async def tokens_for(stack, agent_id, agent_type, key=None, count=2):
    """``count`` tokens of one agent, from a client admitted by ``key`` (default: the shared key)."""
    async with await stack.agent(agent_id, agent_type, key=key) as agent:
        more = [await agent.raw("authenticate_agent", agent_id=agent_id, agent_type=agent_type,
                                requested_permissions=agent.permissions) for _ in range(count - 1)]
        return [agent.token, *(m["token"] for m in more)]


async def build_world(stack):
    owner = await stack.agent("authz-owner", "claude")
    admin = await stack.agent("authz-admin", "admin")
    other = await stack.agent("authz-gemini", "gemini")
    try:
        session_id = (await owner.call("create_session", purpose="authorization matrix"))["session_id"]
        for visibility in ("public", "private", "agent_only"):
            result = await owner.call("add_message", session_id=session_id, content=f"owner {visibility}",
                                      visibility=visibility)
            assert result["success"], result
        assert (await admin.call("add_message", session_id=session_id, content="admins only",
                                 visibility="admin_only"))["success"]
        tokens = {"owner": owner.token, "admin": admin.token, "other": other.token}
        spares = {"admin": (await tokens_for(stack, "authz-admin", "admin"))[1],
                  "other": (await tokens_for(stack, "authz-gemini", "gemini"))[1],
                  "owner": (await tokens_for(stack, "authz-owner", "claude"))[1]}
        refreshed = (await tokens_for(stack, "authz-refreshed", "claude", count=1))[0]
        assert (await owner.raw("refresh_token", current_token=refreshed))["success"]
    finally:
        for agent in (owner, admin, other):
            await agent.close()
    keys = {
        "keyed": stack.issue_key("authz-keyed", "claude"),
        "revoked": stack.issue_key("authz-rotated", "claude"),
        "rotated": stack.issue_key("authz-rotated", "claude"),
        "expired": stack.issue_key("authz-expiring", "claude", "--expires-days", "1"),
        "renewed": stack.issue_key("authz-expiring", "claude"),
    }
    keyed = await tokens_for(stack, "authz-keyed", "claude", keys["keyed"])
    revoked = await tokens_for(stack, "authz-rotated", "claude", keys["revoked"])
    expired = await tokens_for(stack, "authz-expiring", "claude", keys["expired"])
    stack.manage("agent_key", "revoke", keys["revoked"].split("_")[1])
    stack.manage("shell", "-c", "from datetime import timedelta; from django.utils import timezone; "
                 "from realtime.models import AgentCredential as C; "
                 f"C.objects.filter(key_id={keys['expired'].split('_')[1]!r})"
                 ".update(expires_at=timezone.now() - timedelta(seconds=1))")
    create_users = (
        "from django.contrib.auth import get_user_model as m; U = m(); "
        f"U.objects.create_user('viewer', password='{PASSWORD}'); "
        f"U.objects.create_user('staffer', password='{PASSWORD}', is_staff=True); "
        f"U.objects.create_superuser('root', 'root@example.com', '{PASSWORD}')"
    )
    stack.manage("shell", "-c", create_users)
    key = stack.api_key
    callers = {
        "none": Caller("none"),
        "wrong_key": Caller("wrong_key", api_key="not-the-api-key", token="not-a-token-or-secret"),
        "forged_token": Caller("forged_token", api_key=key, token=signed_token(
            "some-other-secret-of-enough-length", sub="authz-owner", agent_type="admin")),
        "expired_token": Caller("expired_token", api_key=key, token=signed_token(
            stack.jwt_secret, sub="authz-owner", agent_type="claude", permissions=["read", "write"],
            iat=int(time.time()) - 3600, expires_in=-60)),
        "other_type_agent": Caller("other_type_agent", api_key=key, token=tokens["other"]),
        "user": Caller("user", api_key=key, cookie=session_cookie(stack, "viewer")),
        "staff": Caller("staff", api_key=key, cookie=session_cookie(stack, "staffer")),
        "admin": Caller("admin", api_key=key, token=tokens["admin"], cookie=session_cookie(stack, "root")),
        # Admitted by agent keys.
        "keyed_agent": Caller("keyed_agent", api_key=keys["keyed"], token=keyed[0], spare=keyed[1],
                              auth_as=("authz-keyed", "claude")),
        "key_mismatch": Caller("key_mismatch", api_key=keys["keyed"], token=tokens["owner"], spare=spares["owner"]),
        "shared_keyed_token": Caller("shared_keyed_token", api_key=key, token=keyed[0], spare=keyed[1],
                                     auth_as=("authz-keyed", "claude")),
        "revoked_key": Caller("revoked_key", api_key=keys["revoked"], token=revoked[0], admitted=False),
        "expired_key": Caller("expired_key", api_key=keys["expired"], token=expired[0], admitted=False),
        "revoked_key_token": Caller("revoked_key_token", api_key=keys["rotated"], token=revoked[0],
                                    spare=revoked[1], auth_as=("authz-rotated", "claude")),
        "expired_key_token": Caller("expired_key_token", api_key=keys["renewed"], token=expired[0],
                                    spare=expired[1], auth_as=("authz-expiring", "claude")),
        "refreshed_token": Caller("refreshed_token", api_key=key, token=refreshed, spare=refreshed),
    }
    callers["admin"].spare, callers["other_type_agent"].spare = spares["admin"], spares["other"]
    for name in ("none", "wrong_key"):
        callers[name].admitted = False
    return World(session_id, tokens["owner"], callers, stack.broadcast_secret)


@pytest.fixture(scope="module")
def world(stack):
    return asyncio.run(build_world(stack))


# MCP: tools, resources, prompts

# What each caller gets from a tool needing this permission ("open": no token needed).
TOOL_EXPECTED = {
    #                    read                 write                admin                open
    "none":             ("API_KEY_REQUIRED", "API_KEY_REQUIRED", "API_KEY_REQUIRED", "API_KEY_REQUIRED"),
    "wrong_key":        ("API_KEY_REQUIRED", "API_KEY_REQUIRED", "API_KEY_REQUIRED", "API_KEY_REQUIRED"),
    "forged_token":     ("TOKEN_INVALID",    "TOKEN_INVALID",    "TOKEN_INVALID",    "ok"),
    "expired_token":    ("TOKEN_EXPIRED",    "TOKEN_EXPIRED",    "TOKEN_EXPIRED",    "ok"),
    "other_type_agent": ("ok",               "ok",               "PERMISSION_DENIED", "ok"),
    "user":             ("AUTH_REQUIRED",    "AUTH_REQUIRED",    "AUTH_REQUIRED",    "ok"),
    "staff":            ("AUTH_REQUIRED",    "AUTH_REQUIRED",    "AUTH_REQUIRED",    "ok"),
    "admin":            ("ok",               "ok",               "ok",               "ok"),
    "keyed_agent":      ("ok",               "ok",               "PERMISSION_DENIED", "ok"),
    "key_mismatch":     ("IDENTITY_MISMATCH", "IDENTITY_MISMATCH", "IDENTITY_MISMATCH", "IDENTITY_MISMATCH"),
    "shared_keyed_token": ("IDENTITY_MISMATCH", "IDENTITY_MISMATCH", "IDENTITY_MISMATCH", "AGENT_KEY_REQUIRED"),
    "revoked_key":      ("API_KEY_REQUIRED", "API_KEY_REQUIRED", "API_KEY_REQUIRED", "API_KEY_REQUIRED"),
    "expired_key":      ("API_KEY_REQUIRED", "API_KEY_REQUIRED", "API_KEY_REQUIRED", "API_KEY_REQUIRED"),
    "revoked_key_token": ("TOKEN_REVOKED",   "TOKEN_REVOKED",    "TOKEN_REVOKED",    "ok"),
    "expired_key_token": ("TOKEN_REVOKED",   "TOKEN_REVOKED",    "TOKEN_REVOKED",    "ok"),
    "refreshed_token":  ("TOKEN_REVOKED",    "TOKEN_REVOKED",    "TOKEN_REVOKED",    "ok"),
}
PERMISSION_COLUMN = {"read": 0, "write": 1, "admin": 2, "open": 3}

# refresh_token takes the token to renew as its argument; an expired one is renewed within the grace window.
REFRESH_EXPECTED = {
    "none": "API_KEY_REQUIRED", "wrong_key": "API_KEY_REQUIRED", "forged_token": "TOKEN_INVALID",
    "expired_token": "ok", "other_type_agent": "ok", "user": "TOKEN_INVALID", "staff": "TOKEN_INVALID",
    "admin": "ok", "keyed_agent": "ok", "key_mismatch": "IDENTITY_MISMATCH", "shared_keyed_token": "IDENTITY_MISMATCH",
    "revoked_key": "API_KEY_REQUIRED", "expired_key": "API_KEY_REQUIRED", "revoked_key_token": "TOKEN_REVOKED",
    "expired_key_token": "TOKEN_REVOKED", "refreshed_token": "TOKEN_REVOKED",
}

# Valid arguments for every tool (in call order: set_memory before get_memory and delete_memory).
TOOL_ARGS = {
    "authenticate_agent": lambda w, c: {"agent_id": c.auth_as[0], "agent_type": c.auth_as[1]},
    "refresh_token": lambda w, c: {"current_token": c.spare or c.token or c.cookie or "none"},
    "create_session": lambda w, c: {"purpose": "opened by the authorization matrix"},
    "get_session": lambda w, c: {"session_id": w.session_id},
    "add_message": lambda w, c: {"session_id": w.session_id, "content": f"probe from {c.name}"},
    "get_messages": lambda w, c: {"session_id": w.session_id},
    "search_context": lambda w, c: {"session_id": w.session_id, "query": "owner public"},
    "search_by_sender": lambda w, c: {"session_id": w.session_id, "sender": "authz-owner"},
    "search_by_timerange": lambda w, c: {"session_id": w.session_id, "start_time": "2000-01-01T00:00:00Z",
                                         "end_time": "2100-01-01T00:00:00Z"},
    "set_memory": lambda w, c: {"key": "authz", "value": {"caller": c.name}},
    "get_memory": lambda w, c: {"key": "authz"},
    "list_memory": lambda w, c: {},
    "delete_memory": lambda w, c: {"key": "authz"},
    "get_usage_guidance": lambda w, c: {},
    "get_performance_metrics": lambda w, c: {},
    "get_inbox": lambda w, c: {},
    "mark_read": lambda w, c: {"session_id": w.session_id, "seq": 1},
    "list_sessions": lambda w, c: {},
    "watch_session": lambda w, c: {"session_id": w.session_id},
    "unwatch_session": lambda w, c: {"session_id": w.session_id},
    "wait_for_messages": lambda w, c: {"session_id": w.session_id, "timeout": 0},
}

# Resources and prompts identify the caller by Authorization: Bearer only.
READ_EXPECTED = {
    "none": "API_KEY_REQUIRED", "wrong_key": "API_KEY_REQUIRED", "forged_token": "TOKEN_INVALID",
    "expired_token": "TOKEN_EXPIRED", "other_type_agent": "ok", "user": "AUTH_REQUIRED",
    "staff": "AUTH_REQUIRED", "admin": "ok",
    **{name: TOOL_EXPECTED[name][0] for name in KEY_CALLERS},
}
# An agent's memory resource is readable by that agent only, whoever else asks.
FOREIGN_MEMORY_EXPECTED = {**READ_EXPECTED, "other_type_agent": "PERMISSION_DENIED", "admin": "PERMISSION_DENIED",
                           "keyed_agent": "PERMISSION_DENIED"}
OPEN_PROMPT_EXPECTED = {**{c: "ok" for c in MCP_CALLERS}, "none": "API_KEY_REQUIRED",
                        "wrong_key": "API_KEY_REQUIRED", "revoked_key": "API_KEY_REQUIRED",
                        "expired_key": "API_KEY_REQUIRED"}
# session://{id}/messages/{limit} as shared-context-server 1.1 served it: the shared key without a token reads
# public messages only (a browser cookie is no token here).
PUBLIC_READ_EXPECTED = {**READ_EXPECTED, "user": "ok", "staff": "ok"}


def tool_permissions():
    """Each tool's permission as declared with it (``agent_tool(permission=...)``); None → "open"."""
    from mcp_sidecar import tools  # noqa: F401  (registers every tool)
    from mcp_sidecar.app import TOOL_PERMISSIONS

    assert set(TOOL_PERMISSIONS) == set(TOOL_ARGS), (
        f"tools without a row in TOOL_ARGS: {sorted(set(TOOL_PERMISSIONS) - set(TOOL_ARGS))}; "
        f"rows for no tool: {sorted(set(TOOL_ARGS) - set(TOOL_PERMISSIONS))}")
    return {name: needed or "open" for name, needed in TOOL_PERMISSIONS.items()}


def mcp_client(stack, caller):
    headers = {"X-API-Key": caller.api_key or ""}
    if caller.token:
        headers["Authorization"] = f"Bearer {caller.token}"
    if caller.cookie:
        headers["Cookie"] = f"sessionid={caller.cookie}"
    # The initialize handshake: an MCP session, which watch_session needs (it pushes on the session's stream).
    return Client(StreamableHttpTransport(stack.mcp_url, headers=headers), mode="legacy")


def raw_mcp(stack, caller, method, params):
    """One JSON-RPC request without a session: what a client without the API key gets."""
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    if caller.api_key:
        headers["X-API-Key"] = caller.api_key
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    answer = httpx.post(stack.mcp_url, json=body, headers=headers, timeout=10)
    assert answer.status_code == 401, (method, answer.status_code, answer.text[:200])
    return answer.json()["code"]


def outcome_of_result(result):
    if result.get("success") is True:
        return "ok"
    return result.get("code", f"unexpected {result}")


def outcome_of_error(exc):
    """The stable code at the start of a resource/prompt error message."""
    match = re.search(r"\b(" + "|".join(sorted(ERROR_CODES)) + r")\b", str(exc))
    return match.group(1) if match else f"unexpected error {exc!r}"


@pytest.mark.parametrize("caller_name", MCP_CALLERS)
async def test_mcp_tools(stack, world, caller_name):
    caller = world.callers[caller_name]
    permissions = tool_permissions()
    mismatches = []
    if not caller.admitted:
        # Refused by the API key before any MCP session exists: one request per tool.
        for tool in permissions:
            got = raw_mcp(stack, caller, "tools/call", {"name": tool, "arguments": {}})
            expected = TOOL_EXPECTED[caller_name][PERMISSION_COLUMN[permissions[tool]]]
            if got != expected:
                mismatches.append((tool, expected, got))
        assert not mismatches, mismatches
        return
    async with mcp_client(stack, caller) as client:
        listed = {tool.name: tool for tool in await client.list_tools()}
        # What the server lists is exactly what was declared, each tool with its permission in _meta.
        assert sorted(listed) == sorted(permissions), (
            f"listed but not declared: {sorted(set(listed) - set(permissions))}; "
            f"declared but not listed: {sorted(set(permissions) - set(listed))}")
        published = {name: (tool.meta or {}).get("permission", "missing").replace("none", "open")
                     for name, tool in listed.items()}
        assert published == permissions, published
        for tool in TOOL_ARGS:
            arguments = TOOL_ARGS[tool](world, caller)
            if caller.token and permissions[tool] != "open":
                arguments["auth_token"] = caller.token
            result = (await client.call_tool(tool, arguments, raise_on_error=False)).structured_content
            got = outcome_of_result(result)
            if tool == "refresh_token":
                expected = REFRESH_EXPECTED[caller_name]
            else:
                expected = TOOL_EXPECTED[caller_name][PERMISSION_COLUMN[permissions[tool]]]
            if got != expected:
                mismatches.append((tool, expected, got))
            if got in AUTH_CODES:
                assert result.get("error") and result.get("hint"), (tool, result)
    assert not mismatches, mismatches


async def read_outcome(coroutine):
    try:
        await coroutine
    except Exception as exc:  # the client raises the server's error for resources and prompts
        return outcome_of_error(exc)
    return "ok"


@pytest.mark.parametrize("caller_name", MCP_CALLERS)
async def test_mcp_resources_and_prompts(stack, world, caller_name):
    caller = world.callers[caller_name]
    doors = {
        "resource session://": (f"session://{world.session_id}", READ_EXPECTED),
        "resource session://<id>/messages/<limit>": (f"session://{world.session_id}/messages/5", PUBLIC_READ_EXPECTED),
        "resource server://info": ("server://info", OPEN_PROMPT_EXPECTED),
        "resource server://info/default": ("server://info/default", OPEN_PROMPT_EXPECTED),
        "resource docs://tools": ("docs://tools", OPEN_PROMPT_EXPECTED),
        "resource docs://tools/<tool>": ("docs://tools/add_message", OPEN_PROMPT_EXPECTED),
        "resource agent://<other agent>/memory": ("agent://authz-owner/memory", FOREIGN_MEMORY_EXPECTED),
        "prompt debug-session": (("debug-session", {"session_id": world.session_id}), READ_EXPECTED),
        "prompt setup-collaboration": (("setup-collaboration", {"purpose": "x"}), OPEN_PROMPT_EXPECTED),
    }
    mismatches = []
    if not caller.admitted:
        for door, (target, expected) in doors.items():
            if door.startswith("resource"):
                got = raw_mcp(stack, caller, "resources/read", {"uri": target})
            else:
                got = raw_mcp(stack, caller, "prompts/get", {"name": target[0], "arguments": target[1]})
            if got != expected[caller_name]:
                mismatches.append((door, expected[caller_name], got))
        assert not mismatches, mismatches
        return
    async with mcp_client(stack, caller) as client:
        templates = {t.uri_template for t in await client.list_resource_templates()}
        assert templates <= {"session://{session_id}", "agent://{agent_id}/memory", "server://info/{_name}",
                             "session://{session_id}/messages/{limit}", "docs://tools/{name}"}, (
            f"add these resources to the authorization matrix: {templates}")
        resources = {str(r.uri) for r in await client.list_resources()}
        assert resources <= {"server://info", "docs://tools"}, f"add these resources to the matrix: {resources}"
        prompts = {p.name for p in await client.list_prompts()}
        assert prompts <= {"debug-session", "setup-collaboration"}, (
            f"add these prompts to the authorization matrix: {prompts}")
        for door, (target, expected) in doors.items():
            if door.startswith("resource"):
                got = await read_outcome(client.read_resource(target))
            else:
                got = await read_outcome(client.get_prompt(*target))
            if got != expected[caller_name]:
                mismatches.append((door, expected[caller_name], got))
    assert not mismatches, mismatches


async def test_an_agent_reads_its_own_memory_resource(stack, world):
    """The refusal above is about whose memory it is, not a broken resource."""
    caller = world.callers["admin"]
    async with mcp_client(stack, caller) as client:
        contents = await client.read_resource("agent://authz-admin/memory")
    assert contents and json.loads(contents[0].text) is not None


# Broadcast view

BROADCAST_EXPECTED = {
    "none": 401, "wrong_key": 403, "forged_token": 403, "expired_token": 403, "other_type_agent": 403,
    "user": 401, "staff": 401, "admin": 403,
}


def broadcast_body(session_id):
    return {"type": "new_message", "session_id": session_id, "seq": 1, "data": {
        "id": 1, "sender": "intruder", "sender_type": "claude", "content": "injected", "visibility": "public",
        "metadata": {}, "parent_message_id": None, "timestamp": "2026-01-01T00:00:00Z"}}


@pytest.mark.parametrize("caller_name", CALLERS)
def test_broadcast_view(stack, world, caller_name):
    caller = world.callers[caller_name]
    headers = {}
    if caller.token:
        headers["Authorization"] = f"Bearer {caller.token}"
    cookies = {"sessionid": caller.cookie} if caller.cookie else None
    answer = httpx.post(f"{stack.http_url}/broadcast/{world.session_id}", json=broadcast_body(world.session_id),
                        headers=headers, cookies=cookies, timeout=10)
    assert answer.status_code == BROADCAST_EXPECTED[caller_name], answer.text
    assert answer.json()["success"] is False


def test_broadcast_view_opens_for_the_secret_only(stack, world):
    """The row that proves the door opens: the shared secret (not the API key) is accepted."""
    url = f"{stack.http_url}/broadcast/{world.session_id}"
    body = broadcast_body(world.session_id)
    with_key = httpx.post(url, json=body, headers={"Authorization": f"Bearer {stack.api_key}"}, timeout=10)
    assert with_key.status_code == 403
    with_secret = httpx.post(url, json=body, headers={"Authorization": f"Bearer {world.broadcast_secret}"},
                             timeout=10)
    assert with_secret.status_code == 202 and with_secret.json()["accepted"] == 1


# WebSockets

WS_EXPECTED = {
    #                    /ws/<session>/   /ws/dashboard/
    "none":             ("closed 4401",  "refused"),
    "wrong_key":        ("closed 4401",  "refused"),
    "forged_token":     ("closed 4401",  "refused"),
    "expired_token":    ("closed 4401",  "refused"),
    "other_type_agent": ("ok",           "refused"),
    "user":             ("ok",           "ok"),
    "staff":            ("ok",           "ok"),
    "admin":            ("ok",           "ok"),
}


async def ws_outcome(url, origin, headers):
    """Connect, send a ping; "refused" (handshake), "closed <code>", or "ok" (hello, then pong)."""
    try:
        socket = await websockets.connect(url, origin=origin, additional_headers=headers, open_timeout=10)
    except websockets.InvalidStatus as exc:
        return "refused" if exc.response.status_code == 403 else f"handshake {exc.response.status_code}"
    frames = []
    try:
        await socket.send(json.dumps({"type": "ping"}))
        async with asyncio.timeout(10):
            async for text in socket:
                frames.append(json.loads(text))
                if frames[-1]["type"] == "pong":
                    break
    except websockets.ConnectionClosed:
        pass
    finally:
        await socket.close()
    if socket.close_code not in (None, 1000) and not any(f["type"] == "pong" for f in frames):
        assert not [f for f in frames if f["type"] in ("hello", "new_message")], frames
        return f"closed {socket.close_code}"
    return "ok" if frames and frames[0]["type"] == "hello" else f"unexpected {frames}"


@pytest.mark.parametrize("caller_name", CALLERS)
async def test_websockets(stack, world, caller_name):
    caller = world.callers[caller_name]
    base = f"ws://127.0.0.1:{stack.ws_port}"
    got = (
        await ws_outcome(f"{base}/ws/{world.session_id}/", stack.origin, caller.ws_headers),
        await ws_outcome(f"{base}/ws/dashboard/", stack.origin, caller.ws_headers),
    )
    assert got == WS_EXPECTED[caller_name]


async def test_websocket_from_a_foreign_origin_is_refused_even_with_credentials(stack, world):
    admin = world.callers["admin"]
    base = f"ws://127.0.0.1:{stack.ws_port}"
    for url in (f"{base}/ws/{world.session_id}/", f"{base}/ws/dashboard/"):
        assert await ws_outcome(url, "http://evil.example", admin.ws_headers) == "refused"
        assert await ws_outcome(url, "null", admin.ws_headers) == "refused"


# Pages and admin

PAGES = ["/", "/sessions/{sid}/", "/sessions/{sid}/messages?before=100", "/memory/", "/admin/",
         "/admin/realtime/message/", "/admin/realtime/memoryentry/", "/health", "/accounts/login/"]
# The admin's model pages: staff without model permissions (``staffer``) are refused, superusers served.
ADMIN_MODEL_PAGES = ["/admin/realtime/session/", "/admin/realtime/session/{sid}/change/",
                     "/admin/realtime/session/{sid}/delete/", "/admin/realtime/auditevent/",
                     "/admin/realtime/agentcredential/", "/admin/auth/user/"]
LOGIN, ADMIN_LOGIN = "login", "admin login"
MODEL_PAGES_FOR = {"anonymous": (ADMIN_LOGIN,), "user": (ADMIN_LOGIN,), "staff": (403,), "admin": (200,)}
ANONYMOUS_PAGES = (LOGIN, LOGIN, LOGIN, LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, 200, 200)
PAGE_EXPECTED = {
    "none": ANONYMOUS_PAGES,
    "wrong_key": ANONYMOUS_PAGES,
    "forged_token": ANONYMOUS_PAGES,
    "expired_token": ANONYMOUS_PAGES,
    "other_type_agent": ANONYMOUS_PAGES,  # an agent token is no browser sign-in
    "user": (200, 200, 200, 403, ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, 200, 200),
    "staff": (200, 200, 200, 200, 200, 403, 403, 200, 200),
    "admin": (200, 200, 200, 200, 200, 200, 200, 200, 200),
}
PAGES += ADMIN_MODEL_PAGES
for caller_name, row in PAGE_EXPECTED.items():
    who = caller_name if caller_name in MODEL_PAGES_FOR else "anonymous"
    PAGE_EXPECTED[caller_name] = row + MODEL_PAGES_FOR[who] * len(ADMIN_MODEL_PAGES)


def page_outcome(answer):
    if answer.status_code == 302:
        location = answer.headers["location"]
        if location.startswith("/admin/login/"):
            return ADMIN_LOGIN
        if location.startswith("/accounts/login/"):
            return LOGIN
        return f"302 to {location}"
    return answer.status_code


@pytest.mark.parametrize("caller_name", CALLERS)
def test_pages_and_admin(stack, world, caller_name):
    caller = world.callers[caller_name]
    headers = {"Authorization": f"Bearer {caller.token}", "X-API-Key": caller.api_key or ""} if caller.token else {}
    cookies = {"sessionid": caller.cookie} if caller.cookie else {}
    with httpx.Client(base_url=stack.http_url, headers=headers, cookies=cookies, timeout=10) as client:
        got = tuple(page_outcome(client.get(page.format(sid=world.session_id))) for page in PAGES)
    mismatches = [(page, want, have) for page, want, have in zip(PAGES, PAGE_EXPECTED[caller_name], got,
                                                                 strict=True) if want != have]
    assert not mismatches, mismatches
