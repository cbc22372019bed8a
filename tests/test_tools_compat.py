"""The shared-context-server 1.1 tool surface, through a real MCP client over HTTP."""

import contextlib
import json
import sqlite3
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from django.test import override_settings
from fastmcp.exceptions import ClientError, McpError

from realtime import tokens
from tests.helpers import new_session, signed_token

pytestmark = pytest.mark.asyncio(loop_scope="function")

LEVELS = ("public", "private", "agent_only", "admin_only")
# Who writes each level, and what each reader must see (independent of realtime.visibility).
WRITERS = {"public": "alice", "private": "alice", "agent_only": "alice", "admin_only": "root"}
READERS = {
    # reader: (agent type, levels it sees)    role for alice's messages / for root's admin_only
    "alice": ("claude", {"public", "private", "agent_only"}),  # sender / other type
    "bob": ("claude", {"public", "agent_only"}),  # same type / other type
    "gina": ("gemini", {"public"}),  # other type / other type
    "root": ("admin", set(LEVELS)),  # admin / sender
    "root2": ("admin", set(LEVELS)),  # admin / same type
    "sys": ("system", set(LEVELS)),  # admin / admin
}


def stack_db(stack):
    return contextlib.closing(sqlite3.connect(stack.data_dir / "db.sqlite3", timeout=10))


def audit_events(stack, event_type, agent_id=None):
    with stack_db(stack) as db:
        sql = "SELECT agent_id, session_id, detail FROM realtime_auditevent WHERE event_type = ?"
        rows = db.execute(sql, (event_type,)).fetchall()
    return [row for row in rows if agent_id is None or row[0] == agent_id]


@contextlib.asynccontextmanager
async def agents(stack, **types):
    opened = {}
    try:
        for agent_id, agent_type in types.items():
            opened[agent_id] = await stack.agent(agent_id, agent_type)
        yield opened
    finally:
        for agent in opened.values():
            await agent.close()


def stack_token(stack, agent_id, agent_type, permissions, ttl):
    with override_settings(SCS_JWT_SECRET=stack.jwt_secret):
        return tokens.issue(agent_id, agent_type, permissions, ttl=ttl)[0]


def age_memory(stack, agent_id, seconds):
    """Move an agent's memory entries ``seconds`` into the past in the sidecar's database; how many.

    As if that time had passed for them: the sidecar reads the real clock, and moving the entries
    instead of waiting keeps their TTLs under test (an entry with a longer TTL is still there).
    """
    shift = f"-{seconds} seconds"
    with stack_db(stack) as db, db:
        aged = db.execute(
            "UPDATE realtime_memoryentry SET expires_at = strftime('%Y-%m-%d %H:%M:%f', expires_at, ?),"
            " created_at = strftime('%Y-%m-%d %H:%M:%f', created_at, ?),"
            " updated_at = strftime('%Y-%m-%d %H:%M:%f', updated_at, ?) WHERE agent_id = ?",
            (shift, shift, shift, agent_id))
        return aged.rowcount


async def read_resource(stack, token, uri):
    async with stack.mcp_client(headers={"Authorization": f"Bearer {token}"}) as client:
        contents = await client.read_resource(uri)
    return json.loads(contents[0].text)


# Visibility matrix ------------------------------------------------------------------------------


async def test_visibility_matrix_for_every_read_path(stack):
    async with agents(stack, **{name: agent_type for name, (agent_type, _) in READERS.items()}) as team:
        session_id = await new_session(team["alice"], "matrix")
        for level in LEVELS:
            result = await team[WRITERS[level]].call(
                "add_message", session_id=session_id, content=f"quokka note {level}", visibility=level,
                metadata={"level": level},
            )
            assert result["success"], result
        wide = {"start_time": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
                "end_time": (datetime.now(UTC) + timedelta(hours=1)).isoformat()}

        for reader, (_, expected) in READERS.items():
            agent = team[reader]
            seen = {}
            listed = await agent.call("get_messages", session_id=session_id)
            seen["get_messages"] = [m["visibility"] for m in listed["messages"]]
            session = await agent.call("get_session", session_id=session_id)
            seen["get_session"] = [m["visibility"] for m in session["messages"]]
            found = await agent.call("search_context", session_id=session_id, query="quokka note")
            seen["search_context"] = [r["message"]["visibility"] for r in found["results"]]
            by_sender = []
            for writer in ("alice", "root"):
                result = await agent.call("search_by_sender", session_id=session_id, sender=writer)
                by_sender += [m["visibility"] for m in result["messages"]]
            seen["search_by_sender"] = by_sender
            ranged = await agent.call("search_by_timerange", session_id=session_id, **wide)
            seen["search_by_timerange"] = [m["visibility"] for m in ranged["messages"]]
            resource = await read_resource(stack, agent.token, f"session://{session_id}")
            seen["session resource"] = [m["visibility"] for m in resource["messages"]]
            assert resource["statistics"]["visible_messages"] == len(expected)

            for path, levels in seen.items():
                assert sorted(levels) == sorted(expected), (reader, path, levels)
            for path, levels in seen.items():
                assert len(levels) == len(set(levels)), (reader, path, "duplicates")


async def test_search_scope_narrows_within_what_the_reader_may_see(stack):
    async with agents(stack, alice="claude", bob="claude") as team:
        session_id = await new_session(team["alice"])
        for level in ("public", "private", "agent_only"):
            await team["alice"].call("add_message", session_id=session_id, content=f"walrus {level}", visibility=level)
        await team["bob"].call("add_message", session_id=session_id, content="walrus bob private", visibility="private")

        async def levels(agent, scope):
            result = await agent.call("search_context", session_id=session_id, query="walrus", search_scope=scope)
            return sorted((r["message"]["sender"], r["message"]["visibility"]) for r in result["results"])

        assert await levels(team["alice"], "public") == [("alice", "public")]
        assert await levels(team["alice"], "private") == [("alice", "private")]
        assert await levels(team["bob"], "private") == [("bob", "private")]
        assert await levels(team["bob"], "all") == [("alice", "agent_only"), ("alice", "public"), ("bob", "private")]


# Search ----------------------------------------------------------------------------------------


async def test_search_context_ranks_fuzzy_matches_with_score_and_preview(stack):
    async with agents(stack, alice="claude") as team:
        alice = team["alice"]
        session_id = await new_session(alice)
        long_text = "filler words " * 30 + "the postgres migration finished cleanly" + " more filler" * 30
        for content in ("the postgres migration finished cleanly", "lunch menu for friday", long_text):
            await alice.call("add_message", session_id=session_id, content=content)
        await alice.call("add_message", session_id=session_id, content="deploy notes",
                         metadata={"ticket": "MIGRATE-77"})

        result = await alice.call("search_context", session_id=session_id, query="postgres migratoin", limit=5)
        assert result["success"] and result["query"] == "postgres migratoin"
        contents = [r["message"]["content"] for r in result["results"]]
        assert "lunch menu for friday" not in contents
        assert set(contents[:2]) == {"the postgres migration finished cleanly", long_text}
        scores = [r["score"] for r in result["results"]]
        assert scores == sorted(scores, reverse=True) and scores[0] >= 80
        assert result["results"][0]["relevance"] == "high"
        assert result["message_count"] == len(result["results"])
        long_hit = next(r for r in result["results"] if r["message"]["content"] == long_text)
        assert "postgres migration" in long_hit["match_preview"] and len(long_hit["match_preview"]) < 200

        with_meta = await alice.call("search_context", session_id=session_id, query="MIGRATE-77", fuzzy_threshold=90)
        without = await alice.call("search_context", session_id=session_id, query="MIGRATE-77", fuzzy_threshold=90,
                                   search_metadata=False)
        assert [r["message"]["content"] for r in with_meta["results"]] == ["deploy notes"]
        assert without["results"] == []


async def test_search_sees_messages_added_after_an_earlier_search(stack):
    async with agents(stack, alice="claude") as team:
        alice = team["alice"]
        session_id = await new_session(alice)
        await alice.call("add_message", session_id=session_id, content="first albatross")
        first = await alice.call("search_context", session_id=session_id, query="albatross")
        await alice.call("add_message", session_id=session_id, content="second albatross")
        second = await alice.call("search_context", session_id=session_id, query="albatross")
        assert [r["message"]["content"] for r in first["results"]] == ["first albatross"]
        assert sorted(r["message"]["content"] for r in second["results"]) == ["first albatross", "second albatross"]


async def test_search_by_sender_and_timerange(stack):
    async with agents(stack, alice="claude", bob="claude") as team:
        session_id = await new_session(team["alice"])
        for n in range(3):
            await team["alice"].call("add_message", session_id=session_id, content=f"alice {n}")
        await team["bob"].call("add_message", session_id=session_id, content="bob 0")

        by_alice = await team["bob"].call("search_by_sender", session_id=session_id, sender="alice", limit=2)
        assert by_alice["sender"] == "alice" and by_alice["count"] == 2
        assert [m["content"] for m in by_alice["messages"]] == ["alice 2", "alice 1"]  # newest first

        listed = await team["alice"].call("get_messages", session_id=session_id)
        stamps = [m["timestamp"] for m in listed["messages"]]
        ranged = await team["alice"].call("search_by_timerange", session_id=session_id, start_time=stamps[1],
                                          end_time=stamps[2])
        assert [m["content"] for m in ranged["messages"]] == ["alice 1", "alice 2"]
        assert ranged["timerange"] == {"start": stamps[1], "end": stamps[2]} and ranged["has_more"] is False
        naive = await team["alice"].call("search_by_timerange", session_id=session_id, start_time="2000-01-01T00:00:00",
                                         end_time="2100-01-01", limit=3)
        assert naive["count"] == 3 and naive["has_more"] is True


# Threads ---------------------------------------------------------------------------------------


async def test_threads_stay_within_their_session(stack):
    async with agents(stack, alice="claude") as team:
        alice = team["alice"]
        session_id, other_id = await new_session(alice), await new_session(alice)
        root = await alice.call("add_message", session_id=session_id, content="root")
        reply = await alice.call("add_message", session_id=session_id, content="reply",
                                 parent_message_id=root["message_id"])
        await alice.call("add_message", session_id=session_id, content="nested", parent_message_id=reply["message_id"])
        await alice.call("add_message", session_id=session_id, content="unrelated")
        elsewhere = await alice.call("add_message", session_id=other_id, content="elsewhere")

        thread = await alice.call("get_messages", session_id=session_id, thread_id=root["message_id"])
        assert [m["content"] for m in thread["messages"]] == ["root", "reply", "nested"]
        assert thread["messages"][1]["parent_message_id"] == root["message_id"]

        crossed = await alice.call("add_message", session_id=session_id, content="x",
                                   parent_message_id=elsewhere["message_id"])
        assert crossed["code"] == "PARENT_NOT_FOUND" and crossed["hint"]
        missing = await alice.call("add_message", session_id=session_id, content="x", parent_message_id=10**9)
        assert missing["code"] == "PARENT_NOT_FOUND"
        after = await alice.call("get_messages", session_id=session_id)
        assert after["count"] == 4


# Memory ----------------------------------------------------------------------------------------


async def test_memory_round_trip_scopes_and_any_json_value(stack):
    async with agents(stack, keeper="claude") as team:
        alice = team["keeper"]
        session_id = await new_session(alice)
        values = {"plan": {"steps": [1, 2.5, "three"], "done": False}, "note": "text", "count": 7, "nothing": None,
                  "flags": [True, None]}
        for key, value in values.items():
            stored = await alice.call("set_memory", key=key, value=value, metadata={"source": "test"})
            assert stored["success"] and stored["scope"] == "global" and stored["expires_at"] is None, stored
        for key, value in values.items():
            got = await alice.call("get_memory", key=key)
            assert got["success"] and got["value"] == value and got["metadata"] == {"source": "test"}, got

        scoped = await alice.call("set_memory", key="plan", value="session plan", session_id=session_id)
        assert scoped["scope"] == "session" and scoped["session_scoped"] is True
        assert (await alice.call("get_memory", key="plan", session_id=session_id))["value"] == "session plan"
        assert (await alice.call("get_memory", key="plan"))["value"] == values["plan"]

        listed = await alice.call("list_memory")
        assert sorted(e["key"] for e in listed["entries"]) == sorted(values)
        assert all(e["scope"] == "global" and e["value_size"] > 0 for e in listed["entries"])
        assert (await alice.call("list_memory", session_id=session_id))["count"] == 1
        assert (await alice.call("list_memory", session_id="all"))["count"] == len(values) + 1
        assert [e["key"] for e in (await alice.call("list_memory", prefix="no"))["entries"]] in (
            ["note", "nothing"], ["nothing", "note"])

        resource = await read_resource(stack, alice.token, "agent://keeper/memory")
        assert resource["global"]["plan"]["value"] == values["plan"]
        assert resource["sessions"][session_id]["plan"]["value"] == "session plan"


async def test_memory_is_private_to_each_agent(stack):
    async with agents(stack, owner="claude", snoop="claude", boss="admin") as team:
        await team["owner"].call("set_memory", key="secret", value="owner's")
        for other in ("snoop", "boss"):
            assert (await team[other].call("get_memory", key="secret"))["code"] == "MEMORY_NOT_FOUND"
            assert (await team[other].call("list_memory", session_id="all"))["count"] == 0
            await team[other].call("set_memory", key="secret", value=f"{other}'s")
        assert (await team["owner"].call("get_memory", key="secret"))["value"] == "owner's"
        assert (await team["snoop"].call("get_memory", key="secret"))["value"] == "snoop's"

        with pytest.raises((McpError, ClientError)) as refused:
            await read_resource(stack, team["snoop"].token, "agent://owner/memory")
        assert "PERMISSION_DENIED" in str(refused.value)
        assert any(json.loads(detail).get("target_agent") == "owner"
                   for _, _, detail in audit_events(stack, "permission_denied", "snoop"))


async def test_memory_ttl_expiry_and_overwrite_false(stack):
    async with agents(stack, timer="claude") as team:
        alice = team["timer"]
        stored = await alice.call("set_memory", key="short", value=1, expires_in=1)
        expires_at, stored_at = (datetime.fromisoformat(stored[k].replace("Z", "+00:00"))
                                 for k in ("expires_at", "stored_at"))
        assert timedelta(0) < expires_at - stored_at <= timedelta(seconds=1)  # stored_at is the row's write
        await alice.call("set_memory", key="kept", value=2, expires_in=3600)
        assert (await alice.call("get_memory", key="short"))["value"] == 1

        kept = await alice.call("set_memory", key="short", value="other", overwrite=False)
        assert kept["code"] == "MEMORY_KEY_EXISTS" and kept["hint"]
        assert (await alice.call("get_memory", key="short"))["value"] == 1

        assert age_memory(stack, "timer", seconds=2) == 2  # two seconds pass for both, without waiting them
        assert (await alice.call("get_memory", key="short"))["code"] == "MEMORY_NOT_FOUND"
        assert [e["key"] for e in (await alice.call("list_memory"))["entries"]] == ["kept"]
        with stack_db(stack) as db:
            rows = db.execute("SELECT count(*) FROM realtime_memoryentry WHERE agent_id = 'timer' AND key = 'short'")
            assert rows.fetchone()[0] == 0  # cleaned up, not only hidden
        again = await alice.call("set_memory", key="short", value="fresh", overwrite=False)
        assert again["success"], again
        assert (await alice.call("get_memory", key="short"))["value"] == "fresh"


# Tokens ----------------------------------------------------------------------------------------


async def test_expired_token_is_refused_then_refreshed(stack):
    expired = stack_token(stack, "late-agent", "claude", ["read", "write"], ttl=-30)
    async with stack.mcp_client() as client:
        async def call(tool, **arguments):
            return (await client.call_tool(tool, arguments, raise_on_error=False)).structured_content

        refused = await call("create_session", purpose="late", auth_token=expired)
        assert refused["code"] == "TOKEN_EXPIRED" and "refresh_token" in refused["hint"]

        fresh = await call("refresh_token", current_token=expired)
        assert fresh["success"] and fresh["agent_id"] == "late-agent" and fresh["agent_type"] == "claude"
        assert fresh["permissions"] == ["read", "write"] and fresh["token_type"] == "Bearer"
        assert fresh["expires_in"] > 0 and fresh["token"] != expired
        created = await call("create_session", purpose="on time", auth_token=fresh["token"])
        assert created["success"] and created["created_by"] == "late-agent"

        again = await call("refresh_token", current_token=fresh["token"])
        assert again["success"] and again["agent_id"] == "late-agent"
    assert audit_events(stack, "token_refreshed", "late-agent")


async def test_token_expired_past_the_grace_window_is_not_refreshed(stack):
    ancient = stack_token(stack, "ancient", "claude", ["read"], ttl=-(8 * 24 * 3600))
    async with stack.mcp_client() as client:
        result = (await client.call_tool("refresh_token", {"current_token": ancient},
                                         raise_on_error=False)).structured_content
    assert result["code"] == "TOKEN_EXPIRED" and "authenticate_agent" in result["hint"]


async def test_forged_tokens_are_refused_everywhere(stack):
    genuine = stack_token(stack, "mallory", "claude", ["read", "write"], ttl=600)
    header, payload, signature = genuine.split(".")
    claims = jwt.decode(genuine, options={"verify_signature": False})
    forged = {
        "wrong secret": signed_token("not-the-secret" * 3, **{**claims, "permissions": ["read", "write", "admin"]}),
        "altered claims": ".".join([header, jwt.utils.base64url_encode(json.dumps(
            {**claims, "permissions": ["read", "write", "admin"]}).encode()).decode(), signature]),
        "alg none": signed_token(None, algorithm="none", **claims),
        "expired, wrong secret": signed_token("x" * 40, **{**claims, "exp": claims["exp"] - 7200}),
        "garbage": "not.a.token",
    }
    async with stack.mcp_client() as client:
        async def call(tool, **arguments):
            return (await client.call_tool(tool, arguments, raise_on_error=False)).structured_content

        for name, token in forged.items():
            for tool, arguments in (("get_performance_metrics", {}), ("create_session", {"purpose": "x"}),
                                    ("list_memory", {})):
                result = await call(tool, auth_token=token, **arguments)
                assert result["success"] is False and result["code"] == "TOKEN_INVALID", (name, tool, result)
            refreshed = await call("refresh_token", current_token=token)
            assert refreshed["code"] == "TOKEN_INVALID", (name, refreshed)
    assert len(audit_events(stack, "token_refresh_refused")) >= len(forged)


async def test_bearer_header_identifies_the_caller_without_auth_token(stack):
    async with agents(stack, bearer="claude") as team:
        async with stack.mcp_client(headers={"Authorization": f"Bearer {team['bearer'].token}"}) as client:
            result = await client.call_tool("set_memory", {"key": "via-header", "value": 1}, raise_on_error=False)
            assert result.structured_content["success"], result.structured_content
        assert (await team["bearer"].call("get_memory", key="via-header"))["value"] == 1


# Guidance, metrics, prompts --------------------------------------------------------------------


async def test_usage_guidance_follows_the_permissions(stack):
    async with agents(stack, writer="claude", reader="observer", boss="admin") as team:
        writer = await team["writer"].call("get_usage_guidance")
        assert writer["access_level"] == "AGENT" and writer["guidance_type"] == "operations"
        assert "add_message" in writer["available_tools"]
        assert "get_performance_metrics" in writer["unavailable_tools"]
        reader = await team["reader"].call("get_usage_guidance", guidance_type="troubleshooting")
        assert reader["access_level"] == "READ_ONLY" and "set_memory" in reader["unavailable_tools"]
        assert "TOKEN_EXPIRED" in reader["guidance"]["error_codes"]
        boss = await team["boss"].call("get_usage_guidance", guidance_type="security")
        assert boss["access_level"] == "ADMIN" and "admin_only" in boss["visible_levels"]
        bad = await team["boss"].call("get_usage_guidance", guidance_type="gossip")
        assert bad["code"] == "INVALID_ARGUMENT"


async def test_performance_metrics_for_admins_only(stack):
    async with agents(stack, boss="admin", worker="claude") as team:
        session_id = await new_session(team["worker"])
        await team["worker"].call("add_message", session_id=session_id, content="count me")
        metrics = await team["boss"].call("get_performance_metrics")
        assert metrics["success"]
        assert metrics["tools"]["add_message"]["calls"] >= 1 and metrics["tools"]["add_message"]["p50_ms"] > 0
        assert metrics["bridge"]["target"] == stack.http_url
        assert metrics["database"]["vendor"] == "sqlite" and metrics["database"]["messages"] >= 1
        refused = await team["worker"].call("get_performance_metrics")
        assert refused["code"] == "PERMISSION_DENIED"
    assert any(json.loads(detail).get("needed") == "admin"
               for _, _, detail in audit_events(stack, "permission_denied", "worker"))


async def test_prompts(stack):
    async with agents(stack, alice="claude", gina="gemini") as team:
        session_id = await new_session(team["alice"], "debug me")
        await team["alice"].call("add_message", session_id=session_id, content="visible hello")
        await team["alice"].call("add_message", session_id=session_id, content="hidden thought", visibility="private")
        async with stack.mcp_client(headers={"Authorization": f"Bearer {team['gina'].token}"}) as client:
            names = {prompt.name for prompt in await client.list_prompts()}
            assert {"setup-collaboration", "debug-session"} <= names
            setup = await client.get_prompt("setup-collaboration", {
                "purpose": "ship the release", "agent_types": "claude,gemini", "project_name": "apollo"})
            text = setup.messages[0].content.text
            assert "ship the release" in text and "apollo" in text and "claude, gemini" in text
            debug = await client.get_prompt("debug-session", {"session_id": session_id})
            text = debug.messages[0].content.text
            assert "visible hello" in text and "hidden thought" not in text and "1 messages visible" in text
            with pytest.raises((McpError, ClientError)) as missing:
                await client.get_prompt("debug-session", {"session_id": "session_0000000000000000"})
            assert "SESSION_NOT_FOUND" in str(missing.value)


# Errors ----------------------------------------------------------------------------------------


async def test_every_documented_error_code(stack):
    async with agents(stack, careless="claude", observer="observer") as team:
        alice, observer = team["careless"], team["observer"]
        session_id = await new_session(alice)
        message = await alice.call("add_message", session_id=session_id, content="hello")
        missing_session = "session_" + "0" * 16
        cases = [
            ("AUTH_REQUIRED", alice.raw("get_messages", session_id=session_id)),
            ("PERMISSION_DENIED", observer.call("add_message", session_id=session_id, content="x")),
            ("PERMISSION_DENIED", observer.call("set_memory", key="k", value=1)),
            ("PERMISSION_DENIED", alice.call("add_message", session_id=session_id, content="x",
                                             visibility="admin_only")),
            ("INVALID_SESSION_ID", alice.call("get_session", session_id="nope")),
            ("INVALID_SESSION_ID", alice.call("search_context", session_id="nope", query="x")),
            ("SESSION_NOT_FOUND", alice.call("get_messages", session_id=missing_session)),
            ("SESSION_NOT_FOUND", alice.call("search_by_sender", session_id=missing_session, sender="alice")),
            ("SESSION_NOT_FOUND", alice.call("set_memory", key="k", value=1, session_id=missing_session)),
            ("INVALID_CONTENT", alice.call("add_message", session_id=session_id, content="   ")),
            ("INVALID_ARGUMENT", alice.call("add_message", session_id=session_id, content="x" * 100_001)),
            ("INVALID_ARGUMENT", alice.call("get_messages", session_id=session_id, limit=0)),
            ("INVALID_ARGUMENT", alice.call("search_context", session_id=session_id, query="x", limit=101)),
            ("INVALID_ARGUMENT", alice.call("search_context", session_id=session_id, query="x", search_scope="mine")),
            ("INVALID_ARGUMENT", alice.call("search_context", session_id=session_id, query="x", fuzzy_threshold=101)),
            ("INVALID_ARGUMENT", alice.call("set_memory", key="has space", value=1)),
            ("INVALID_ARGUMENT", alice.call("set_memory", key="k" * 256, value=1)),
            ("INVALID_ARGUMENT", alice.call("set_memory", key="k", value=1, expires_in=-1)),
            ("INVALID_ARGUMENT", alice.call("list_memory", limit=500)),
            ("INVALID_QUERY", alice.call("search_context", session_id=session_id, query="?!")),
            ("INVALID_DATETIME", alice.call("search_by_timerange", session_id=session_id, start_time="yesterday",
                                            end_time="2030-01-01T00:00:00Z")),
            ("INVALID_TIME_RANGE", alice.call("search_by_timerange", session_id=session_id,
                                              start_time="2030-01-02T00:00:00Z", end_time="2030-01-01T00:00:00Z")),
            ("PARENT_NOT_FOUND", alice.call("add_message", session_id=session_id, content="x",
                                            parent_message_id=message["message_id"] + 10**6)),
            ("METADATA_TOO_LARGE", alice.call("set_memory", key="k", value=1, metadata={"x": "y" * 20_000})),
            ("VALUE_TOO_LARGE", alice.call("set_memory", key="big", value="v" * 300_000)),
            ("MEMORY_NOT_FOUND", alice.call("get_memory", key="never-set")),
            ("TOKEN_INVALID", alice.raw("get_session", session_id=session_id, auth_token="x.y.z")),
        ]
        for code, pending in cases:
            result = await pending
            assert result["success"] is False and result["code"] == code, (code, result)
            assert result["error"] and result["hint"], result
        after = await alice.call("get_messages", session_id=session_id)
        assert after["count"] == 1
        assert (await alice.call("list_memory", session_id="all"))["count"] == 0
    assert audit_events(stack, "permission_denied", "observer")


async def test_resources_need_the_callers_token_and_a_real_session(stack):
    async with agents(stack, reader="claude") as team:
        session_id = await new_session(team["reader"])
        async with stack.mcp_client() as anonymous:
            templates = {t.uri_template for t in await anonymous.list_resource_templates()}
            assert {"session://{session_id}", "agent://{agent_id}/memory"} <= templates
            with pytest.raises((McpError, ClientError)) as no_token:
                await anonymous.read_resource(f"session://{session_id}")
            assert "AUTH_REQUIRED" in str(no_token.value)
        for uri, code in (("session://session_nothex", "INVALID_SESSION_ID"),
                          ("session://session_" + "0" * 16, "SESSION_NOT_FOUND")):
            with pytest.raises((McpError, ClientError)) as refused:
                await read_resource(stack, team["reader"].token, uri)
            assert code in str(refused.value)
        resource = await read_resource(stack, team["reader"].token, f"session://{session_id}")
        assert resource["session"]["id"] == session_id and resource["statistics"]["visible_messages"] == 0
