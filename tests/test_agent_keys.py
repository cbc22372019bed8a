"""Agent keys: each agent is who it says on the MCP sidecar, against the real processes.

A key admits one agent id and type with a ceiling of permissions; the shared key
cannot act for an agent that has a key, nor grant admin unless configured; revoked
or expired keys, refreshed-away tokens and too-old authentications are refused at
the next call; tool calls are rate-limited per agent.
"""

import re
import subprocess
import time

import httpx
import jwt
import pytest
from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport
from mcp.shared.exceptions import MCPError

from realtime.ratelimit import Limits
from realtime.tokens import ALGORITHM
from tests.helpers import signed_token
from tests.stack import PYTHON, ROOT

DAY = 24 * 3600


async def call_with(client, tool, **arguments):
    return (await client.call_tool(tool, arguments, raise_on_error=False)).structured_content


def sign(stack, agent_id, agent_type, permissions, *, auth_time, expires_in=3600, credential=""):
    """A genuine token (signed with the stack's secret) whose first authentication was at ``auth_time``."""
    return signed_token(stack.jwt_secret, algorithm=ALGORITHM, expires_in=expires_in, sub=agent_id,
                        agent_type=agent_type, permissions=permissions, cred=credential, auth_time=auth_time)


def claims_of(token):
    return jwt.decode(token, options={"verify_signature": False})


def admitted(stack, headers):
    """Whether the sidecar lets a request presenting ``headers`` past its key check (anything but 401)."""
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json", **headers}
    return httpx.post(stack.mcp_url, json=body, headers=headers, timeout=10).status_code != 401


async def test_an_agent_key_cannot_impersonate_another_agent_or_type(stack):
    key = stack.issue_key("alice", "claude")
    async with stack.mcp_client(key=key) as client:
        for agent_id, agent_type in (("bob", "claude"), ("alice", "admin"), ("bob", "admin")):
            result = await call_with(client, "authenticate_agent", agent_id=agent_id, agent_type=agent_type,
                                     requested_permissions=["read", "write", "admin"])
            assert result["code"] == "IDENTITY_MISMATCH" and "token" not in result, result
            assert "alice" in result["hint"]
        own = await call_with(client, "authenticate_agent", agent_id="alice", agent_type="claude",
                              requested_permissions=["read", "write", "admin"])
    assert own["success"] and own["permissions"] == ["read", "write"], own  # the key's ceiling, not admin
    assert claims_of(own["token"])["cred"] == key.split("_")[1]


async def test_a_client_on_an_agent_key_cannot_use_another_agents_token(stack):
    key = stack.issue_key("alice-2", "claude")
    async with await stack.agent("bob-2", "claude") as bob, await stack.agent("alice-2", "claude", key=key) as alice:
        session_id = (await bob.call("create_session", purpose="bob's"))["session_id"]
        assert (await bob.call("set_memory", key="secret", value="bob's note"))["success"]
        assert (await alice.call("get_session", session_id=session_id))["success"]
        for tool, arguments in (("get_memory", {"key": "secret"}), ("get_messages", {"session_id": session_id})):
            result = await alice.raw(tool, auth_token=bob.token, **arguments)
            assert result["code"] == "IDENTITY_MISMATCH", (tool, result)
        # Nor the other way round: a token issued under a key is refused on the shared key.
        result = await bob.raw("get_memory", key="secret", auth_token=alice.token)
        assert result["code"] == "IDENTITY_MISMATCH", result


async def test_an_agent_key_is_also_accepted_as_authorization_bearer(stack):
    key = stack.issue_key("bearer-agent", "gemini")
    assert admitted(stack, {"Authorization": f"Bearer {key}"})
    assert not admitted(stack, {"Authorization": f"Bearer {key}x"})
    async with Client(StreamableHttpTransport(stack.mcp_url, headers={"Authorization": f"Bearer {key}"})) as client:
        other = await call_with(client, "authenticate_agent", agent_id="someone-else", agent_type="gemini")
        assert other["code"] == "IDENTITY_MISMATCH", other
        own = await call_with(client, "authenticate_agent", agent_id="bearer-agent", agent_type="gemini")
        created = await call_with(client, "create_session", purpose="bearer", auth_token=own["token"])
    assert created["success"], created


async def test_the_shared_key_cannot_act_for_an_agent_that_has_a_key(stack):
    async with await stack.agent("carol", "claude") as before:
        assert (await before.call("list_memory"))["success"]
        stack.issue_key("carol", "claude")
        # Tokens the shared key got for carol end with the key's issue; no new ones are granted.
        assert (await before.call("list_memory"))["code"] == "TOKEN_REVOKED"
        again = await before.raw("authenticate_agent", agent_id="carol", agent_type="claude")
        assert again["code"] == "AGENT_KEY_REQUIRED" and "token" not in again, again
        other = await before.raw("authenticate_agent", agent_id="carol-without-key", agent_type="claude")
        assert other["success"], other


async def test_the_shared_key_grants_admin_only_when_configured(stack, fresh_stack):
    # `stack` runs with SCS_API_KEY_PERMISSIONS=read,write,admin (tests/stack.py).
    async with await stack.agent("root-agent", "admin") as configured:
        assert configured.permissions == ["read", "write", "admin"]
        assert (await configured.call("get_performance_metrics"))["success"]
    default = fresh_stack(SCS_API_KEY_PERMISSIONS="")  # unset: the default, read and write
    async with await default.agent("root-agent", "admin") as capped:
        assert capped.permissions == ["read", "write"]
        assert (await capped.call("get_performance_metrics"))["code"] == "PERMISSION_DENIED"
        # An agent key may still carry admin, if staff issued it so.
        key = default.issue_key("ops", "admin", "--permissions", "read,write,admin")
        async with await default.agent("ops", "admin", key=key) as ops:
            assert ops.permissions == ["read", "write", "admin"]
            assert (await ops.call("get_performance_metrics"))["success"]


def test_a_bad_shared_key_permission_list_stops_start_up(stack):
    bad = subprocess.run([PYTHON, "-m", "mcp_sidecar", "--port", "1"], cwd=ROOT, capture_output=True, text=True,
                         env={**stack.env, "SCS_API_KEY_PERMISSIONS": "read,root"}, timeout=60)
    assert bad.returncode != 0
    assert bad.stderr.strip().splitlines()[-1].endswith(
        "SCS_API_KEY_PERMISSIONS must list some of read, write, admin, got ['read', 'root']"), bad.stderr


async def test_a_revoked_key_admits_nobody_from_the_next_request(stack):
    key = stack.issue_key("dave", "claude")
    async with await stack.agent("dave", "claude", key=key) as dave:
        session_id = (await dave.call("create_session", purpose="before revocation"))["session_id"]
        revoked = stack.manage("agent_key", "revoke", "dave")
        assert "Revoked 1 key" in revoked.stdout
        # The open MCP session is refused at its next request: the key no longer admits anything.
        with pytest.raises(MCPError):
            await dave.call("get_session", session_id=session_id)
    assert not admitted(stack, {"X-API-Key": key})
    # Its token is refused through a client the shared key admits, too.
    async with stack.mcp_client() as shared:
        result = await call_with(shared, "get_session", session_id=session_id, auth_token=dave.token)
        assert result["code"] == "IDENTITY_MISMATCH", result
        refresh = await call_with(shared, "refresh_token", current_token=dave.token)
        assert refresh["code"] == "IDENTITY_MISMATCH", refresh


async def test_revoking_a_key_refuses_its_tokens_with_token_revoked(stack):
    """Two keys of one agent: revoking the first ends the first's tokens, even on a client the second admits."""
    first = stack.issue_key("erin", "claude")
    second = stack.issue_key("erin", "claude")
    async with await stack.agent("erin", "claude", key=first) as old, \
            await stack.agent("erin", "claude", key=second) as new:
        key_id = first.split("_")[1]
        assert stack.manage("agent_key", "revoke", key_id).returncode == 0
        result = await new.raw("list_memory", auth_token=old.token)
        assert result["code"] == "TOKEN_REVOKED" and result["hint"], result
        assert (await new.call("list_memory"))["success"]


def test_revoking_an_unknown_id_is_a_one_line_error(stack):
    answer = stack.manage("agent_key", "revoke", "no-such-agent", check=False)
    assert answer.returncode != 0
    assert answer.stderr.strip() == "CommandError: no active agent key has key id or agent id 'no-such-agent'"


async def test_an_expired_key_admits_nobody_and_ends_its_tokens(stack):
    key = stack.issue_key("frank", "claude", "--expires-days", "1")
    async with await stack.agent("frank", "claude", key=key) as frank:
        assert (await frank.call("list_memory"))["success"]
        stack.manage("shell", "-c", "from datetime import timedelta; from django.utils import timezone; "
                     "from realtime.models import AgentCredential as C; "
                     "C.objects.filter(agent_id='frank').update(expires_at=timezone.now() - timedelta(seconds=1))")
        with pytest.raises(MCPError):
            await frank.call("list_memory")
    assert not admitted(stack, {"X-API-Key": key})
    listed = stack.manage("agent_key", "list").stdout
    assert "frank" in listed and key not in listed and key.split("_", 2)[2] not in listed


async def test_a_refreshed_token_is_refused_at_its_next_use(stack):
    key = stack.issue_key("grace", "claude")
    async with await stack.agent("grace", "claude", key=key) as grace:
        old = grace.token
        refreshed = await grace.raw("refresh_token", current_token=old)
        assert refreshed["success"], refreshed
        before, after = claims_of(old), claims_of(refreshed["token"])
        assert after["cred"] == before["cred"] and after["auth_time"] == before["auth_time"]
        assert (await grace.raw("list_memory", auth_token=refreshed["token"]))["success"]
        assert (await grace.raw("list_memory", auth_token=old))["code"] == "TOKEN_REVOKED"
        again = await grace.raw("refresh_token", current_token=old)
        assert again["code"] == "TOKEN_REVOKED" and "token" not in again, again


async def test_refresh_refuses_once_the_first_authentication_is_too_old(stack):
    now = int(time.time())
    async with stack.mcp_client() as client:
        too_old = sign(stack, "henry", "claude", ["read", "write"], auth_time=now - 30 * DAY - 60)
        result = await call_with(client, "refresh_token", current_token=too_old)
        assert result["code"] == "REAUTHENTICATION_REQUIRED" and "authenticate_agent" in result["hint"], result
        # Within the limit a refresh works, but never past it.
        nearly = sign(stack, "henry", "claude", ["read", "write"], auth_time=now - 30 * DAY + 600)
        result = await call_with(client, "refresh_token", current_token=nearly)
        assert result["success"] and result["expires_in"] <= 600, result
        assert claims_of(result["token"])["auth_time"] == now - 30 * DAY + 600


async def test_tool_calls_are_rate_limited_per_agent(fresh_stack):
    limited = fresh_stack(SCS_TOOL_RATE="1", SCS_TOOL_BURST="5")
    async with await limited.agent("hasty") as hasty, await limited.agent("patient") as patient:
        results = [await hasty.call("list_memory") for _ in range(5)]
        assert all(r["success"] for r in results), results
        for _ in range(20):  # at 1 call/s refill, one of these is refused
            result = await hasty.call("list_memory")
            if not result["success"]:
                break
        assert result["code"] == "RATE_LIMITED", result
        assert 0 < result["retry_after"] <= 1 and result["hint"], result
        assert (await patient.call("list_memory"))["success"]  # another agent has its own allowance


def test_the_bucket_table_refills_with_time_and_stays_bounded():
    now = [0.0]
    limits = Limits("SCS_TOOL_RATE", "SCS_TOOL_BURST", clock=lambda: now[0], max_buckets=3)
    from django.test import override_settings

    with override_settings(SCS_TOOL_RATE=2, SCS_TOOL_BURST=2):
        assert limits.take("a") == 0 and limits.take("a") == 0
        assert limits.take("a") == pytest.approx(0.5)
        now[0] += 0.5
        assert limits.take("a") == 0
        for key in ("b", "c", "d"):
            limits.take(key)
    assert list(limits.buckets) == ["b", "c", "d"]  # "a", least recently seen, was dropped


async def test_stdio_runs_as_the_agent_of_scs_agent_key(stack):
    key = stack.issue_key("stdio-agent-1", "claude")
    async with stack.stdio_client(SCS_AGENT_KEY=key) as client:
        other = await call_with(client, "authenticate_agent", agent_id="someone", agent_type="claude")
        assert other["code"] == "IDENTITY_MISMATCH", other
        own = await call_with(client, "authenticate_agent", agent_id="stdio-agent-1", agent_type="claude")
        assert own["success"], own
        assert (await call_with(client, "list_memory", auth_token=own["token"]))["success"]
        stack.manage("agent_key", "revoke", "stdio-agent-1")
        refused = await call_with(client, "list_memory", auth_token=own["token"])
        assert refused["code"] == "API_KEY_REQUIRED", refused


def test_stdio_refuses_to_start_with_a_bad_agent_key(stack):
    for bad in ("scs_000000000000_nope", "not-a-key"):
        answer = subprocess.run([PYTHON, "-m", "mcp_sidecar", "--transport", "stdio"], cwd=ROOT, input="",
                                capture_output=True, text=True, env={**stack.env, "SCS_AGENT_KEY": bad}, timeout=60)
        assert answer.returncode != 0
        assert answer.stderr.strip().startswith("mcp_sidecar: SCS_AGENT_KEY is not"), answer.stderr
        assert len(answer.stderr.strip().splitlines()) == 1, answer.stderr


# In process: the admin and mcp_config issue keys too.

@pytest.mark.django_db
def test_the_admin_issues_a_key_once_and_never_shows_its_hash(admin_client):
    from realtime import credentials
    from realtime.models import AgentCredential

    answer = admin_client.post("/admin/realtime/agentcredential/add/", {
        "agent_id": "zed", "agent_type": "claude", "permissions": ["read"], "description": "from the admin",
        "expires_at_0": "", "expires_at_1": "",
    }, follow=True)
    assert answer.status_code == 200
    credential = AgentCredential.objects.get(agent_id="zed")
    page = answer.content.decode()
    (key,) = set(re.findall(rf"scs_{credential.key_id}_[A-Za-z0-9_-]+", page))
    admitted = credentials.admit(key)
    assert admitted.agent_id == "zed" and admitted.permissions == ("read",)
    assert credential.created_by == "admin" and credential.key_hash not in page
    change = admin_client.get(f"/admin/realtime/agentcredential/{credential.pk}/change/").content.decode()
    assert credential.key_hash not in change and key not in change
    listing = admin_client.get("/admin/realtime/agentcredential/").content.decode()
    assert key not in listing and credential.key_hash not in listing
    admin_client.post("/admin/realtime/agentcredential/", {"action": "revoke_keys",
                                                           "_selected_action": [credential.pk]})
    assert credentials.admit(key) is None
    assert admin_client.get("/admin/realtime/revokedtoken/add/").status_code == 403


@pytest.mark.django_db
def test_the_admin_refuses_a_bad_agent_id(admin_client):
    from realtime.models import AgentCredential

    answer = admin_client.post("/admin/realtime/agentcredential/add/", {
        "agent_id": "has space", "agent_type": "claude", "permissions": ["read"], "expires_at_0": "",
        "expires_at_1": ""})
    assert answer.status_code == 200 and not AgentCredential.objects.exists()
