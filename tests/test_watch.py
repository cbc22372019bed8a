"""``watch_session`` / ``--watch``: new messages pushed as ``notifications/claude/channel``, over stdio and HTTP.

Real processes, real MCP clients: a fastmcp ``Client`` on an MCP session (the initialize handshake) with a
``ChannelListener`` (tests/stack.py), the client extension that binds the channel method.
"""

import asyncio
import subprocess

import pytest
from fastmcp.client.messages import MessageHandler
from mcp.shared.exceptions import MCPError

from tests.helpers import eventually, new_session, say, signed_token, succeeded
from tests.stack import PYTHON, ROOT, ChannelListener

pytestmark = pytest.mark.asyncio(loop_scope="function")

META_KEYS = {"session_id", "seq", "message_id", "sender", "sender_type", "visibility"}


def watches(stack):
    return stack.sidecar_health()["watches"]


async def no_watches(stack, what="the earlier tests' watches ending with their clients"):
    await eventually(lambda: watches(stack) == 0, within=20, what=what)


async def sync_point(listener, alice, watcher, marker_session):
    """Push one marker through a second watch; once it came, what the first would have pushed came too."""
    succeeded(await watcher.call("watch_session", session_id=marker_session))
    marker = await say(alice, marker_session, "marker")
    await listener.wait(lambda seen: any(m["content"] == "marker" for m in seen.received))
    return marker


async def test_what_the_watcher_may_see_is_pushed_in_order_once_and_stops_on_unwatch(stack):
    alice = await stack.agent("watch-alice", "claude", ("read", "write"))
    carol = await stack.agent("watch-carol", "gemini", ("read", "write"))
    bob = await stack.listening_agent("watch-bob", "claude")
    async with alice, carol, bob:
        session_id = await new_session(alice)
        before = await say(alice, session_id, "before the watch")
        watching = succeeded(await bob.call("watch_session", session_id=session_id))
        assert watching["since_seq"] == before["seq"] and watching["watching"] == [session_id]
        assert watching["method"] == "notifications/claude/channel"

        sent = [
            await say(alice, session_id, "hello bob"),
            await say(alice, session_id, "alice only", visibility="private"),
            await say(carol, session_id, "geminis only", visibility="agent_only"),
            await say(alice, session_id, "claudes only", visibility="agent_only"),
            await say(bob, session_id, "bob's own"),
            await say(carol, session_id, "public from carol", parent_message_id=before["message_id"]),
        ]
        await bob.listener.wait_for_seq(sent[-1]["seq"])
        got = bob.listener.received
        assert [m["content"] for m in got] == ["hello bob", "claudes only", "public from carol"]
        assert bob.listener.seqs == [sent[0]["seq"], sent[3]["seq"], sent[5]["seq"]]
        assert all(set(m["meta"]) == META_KEYS and all(isinstance(v, str) for v in m["meta"].values()) for m in got)
        assert got[0]["meta"] == {"session_id": session_id, "seq": str(sent[0]["seq"]),
                                  "message_id": str(sent[0]["message_id"]), "sender": "watch-alice",
                                  "sender_type": "claude", "visibility": "public"}
        assert got[1]["meta"]["visibility"] == "agent_only" and got[2]["meta"]["sender"] == "watch-carol"

        unwatched = succeeded(await bob.call("unwatch_session", session_id=session_id))
        assert unwatched["was_watching"] and unwatched["watching"] == []
        assert not (await bob.call("unwatch_session", session_id=session_id))["was_watching"]
        await say(alice, session_id, "after the unwatch")
        await sync_point(bob.listener, alice, bob, await new_session(alice))
        assert "after the unwatch" not in [m["content"] for m in bob.listener.received]
        assert len(bob.listener.received) == 4


async def test_since_seq_replays_first_then_goes_on_live(stack):
    alice = await stack.agent("replay-alice", "claude", ("read", "write"))
    bob = await stack.listening_agent("replay-bob", "claude")
    async with alice, bob:
        session_id = await new_session(alice)
        for n in range(5):
            await say(alice, session_id, f"old {n}")
        await say(alice, session_id, "secret", visibility="private")
        watching = succeeded(await bob.call("watch_session", session_id=session_id, since_seq=2))
        assert watching["since_seq"] == 2
        last = await say(alice, session_id, "new")
        await bob.listener.wait_for_seq(last["seq"])
        assert [m["content"] for m in bob.listener.received] == ["old 2", "old 3", "old 4", "new"]
        assert bob.listener.seqs == sorted(set(bob.listener.seqs))

        past = await bob.call("watch_session", session_id=session_id, since_seq=last["seq"] + 1)
        assert past["code"] == "INVALID_ARGUMENT", past
        for wrong, code in (("session_0000000000000000", "SESSION_NOT_FOUND"), ("nope", "INVALID_SESSION_ID")):
            assert (await bob.call("watch_session", session_id=wrong))["code"] == code


async def test_many_messages_from_several_writers_arrive_once_each_in_seq_order(stack):
    writers = [await stack.agent(f"burst-{n}", "claude", ("read", "write")) for n in range(3)]
    bob = await stack.listening_agent("burst-bob", "claude")
    async with writers[0], writers[1], writers[2], bob:
        session_id = await new_session(writers[0])
        succeeded(await bob.call("watch_session", session_id=session_id))
        answers = await asyncio.gather(*(say(w, session_id, f"{w.agent_id} {n}") for n in range(20) for w in writers))
        await bob.listener.wait_for_seq(max(a["seq"] for a in answers))
        assert bob.listener.seqs == sorted(a["seq"] for a in answers)


async def test_a_watch_ends_with_its_mcp_session(stack):
    alice = await stack.agent("leak-alice", "claude", ("read", "write"))
    async with alice:
        session_id = await new_session(alice)
        await no_watches(stack)
        bob = await stack.listening_agent("leak-bob", "claude")
        async with bob:
            succeeded(await bob.call("watch_session", session_id=session_id))
            succeeded(await bob.call("watch_session", session_id=session_id, since_seq=0))  # replaces the first
            assert watches(stack) == 1
        await no_watches(stack, "the watch task ending with its client")


async def test_a_revoked_key_stops_the_pushes(stack):
    key = stack.issue_key("revoked-bob", "claude")
    alice = await stack.agent("revoked-alice", "claude", ("read", "write"))
    bob = await stack.listening_agent("revoked-bob", "claude", key=key)
    async with alice, bob:
        session_id = await new_session(alice)
        await no_watches(stack)
        succeeded(await bob.call("watch_session", session_id=session_id))
        first = await say(alice, session_id, "while the key is good")
        await bob.listener.wait_for_seq(first["seq"])
        stack.manage("agent_key", "revoke", "revoked-bob")
        await say(alice, session_id, "after the revocation")
        await no_watches(stack, "the watch ending")
        assert [m["content"] for m in bob.listener.messages] == ["while the key is good"]
        # The agent is told that the pushes stopped, and from where to go on.
        await bob.listener.wait(lambda listener: listener.ended)
        (ended,) = bob.listener.ended
        assert ended["meta"] == {"session_id": session_id, "event": "watch_ended", "error_code": "TOKEN_REVOKED",
                                 "last_seq": str(first["seq"])}, ended
        assert f"since_seq={first['seq']}" in ended["content"]


async def test_a_refreshed_token_ends_the_watch_made_with_it(stack):
    alice = await stack.agent("refresh-alice", "claude", ("read", "write"))
    bob = await stack.listening_agent("refresh-bob", "claude")
    async with alice, bob:
        session_id = await new_session(alice)
        await no_watches(stack)
        succeeded(await bob.call("watch_session", session_id=session_id))
        assert watches(stack) == 1
        succeeded(await bob.raw("refresh_token", current_token=bob.token))
        await no_watches(stack, "the watch ending")  # within a second, with nothing posted (realtime.wait_guard)
        await say(alice, session_id, "after the refresh")
        await bob.listener.wait(lambda listener: listener.ended)
        assert bob.listener.messages == [] and bob.listener.ended[0]["meta"]["error_code"] == "TOKEN_REVOKED"


async def test_an_expiring_token_ends_the_watch_at_its_expiry(stack):
    alice = await stack.agent("expiry-alice", "claude", ("read", "write"))
    bob = await stack.listening_agent("expiry-bob", "claude")
    async with alice, bob:
        session_id = await new_session(alice)
        short = signed_token(stack.jwt_secret, expires_in=3, sub="expiry-bob", agent_type="claude",
                             permissions=["read"])
        await no_watches(stack)
        succeeded(await bob.raw("watch_session", session_id=session_id, auth_token=short))
        assert watches(stack) == 1
        # Nothing is posted: the watch ends by itself once the token has expired.
        await no_watches(stack, "the watch ending at the expiry")
        await say(alice, session_id, "too late")
        await bob.listener.wait(lambda listener: listener.ended)
        assert bob.listener.messages == [] and bob.listener.ended[0]["meta"]["error_code"] == "TOKEN_EXPIRED"
        assert "refresh_token" in bob.listener.ended[0]["content"]


async def test_a_client_without_an_mcp_session_is_told_there_is_no_stream(stack):
    async with await stack.agent("modern-bob", "claude") as bob:  # the 2026-07-28 protocol: no session
        session_id = await new_session(bob)
        refused = await bob.call("watch_session", session_id=session_id)
        assert refused["code"] == "PUSH_UNAVAILABLE" and "without an MCP session" in refused["error"], refused
        assert "mode='legacy'" in refused["hint"], refused


async def test_the_watches_of_one_connection_are_limited(fresh_stack):
    stack = fresh_stack(SCS_MAX_WATCHES="2")
    bob = await stack.listening_agent("limit-bob", "claude")
    async with bob:
        sessions = [await new_session(bob) for _ in range(3)]
        for session_id in sessions[:2]:
            succeeded(await bob.call("watch_session", session_id=session_id))
        succeeded(await bob.call("watch_session", session_id=sessions[1], since_seq=0))  # the same one again
        refused = await bob.call("watch_session", session_id=sessions[2])
        assert refused["code"] == "TOO_MANY_WATCHES" and "SCS_MAX_WATCHES" in refused["error"], refused
        succeeded(await bob.call("unwatch_session", session_id=sessions[0]))
        succeeded(await bob.call("watch_session", session_id=sessions[2]))

        # Stateless HTTP keeps no MCP session: nothing to push on, and the answer says so.
        stateless = stack.add_sidecar(SCS_MCP_STATELESS="1")
        carol = await stack.via(mcp_port=stateless).listening_agent("limit-carol", "claude")
        async with carol:
            refused = await carol.call("watch_session", session_id=sessions[0])
            assert refused["code"] == "PUSH_UNAVAILABLE" and "stateless" in refused["error"], refused


async def call_stdio(client, tool, **arguments):
    return (await client.call_tool(tool, arguments, raise_on_error=False)).structured_content


async def test_watch_session_over_stdio(stack):
    listener = ChannelListener()
    async with stack.stdio_client(client={"mode": "legacy", "extensions": [listener]}) as client:
        tokens = {}
        for agent_id in ("stdio-alice", "stdio-bob"):
            tokens[agent_id] = succeeded(await call_stdio(client, "authenticate_agent", agent_id=agent_id,
                                                          agent_type="claude"))["token"]
        session_id = succeeded(await call_stdio(client, "create_session", purpose="stdio watch",
                                                auth_token=tokens["stdio-alice"]))["session_id"]
        succeeded(await call_stdio(client, "watch_session", session_id=session_id, auth_token=tokens["stdio-bob"]))
        for content, visibility in (("one", "public"), ("hidden", "private"), ("two", "public")):
            await call_stdio(client, "add_message", session_id=session_id, content=content, visibility=visibility,
                             auth_token=tokens["stdio-alice"])
        await listener.wait_for_seq(3)
        assert [(m["content"], m["meta"]["seq"]) for m in listener.received] == [("one", "1"), ("two", "3")]


async def test_the_watch_flag_over_stdio_watches_from_the_start(stack):
    key = stack.issue_key("flag-bob", "claude")
    alice = await stack.agent("flag-alice", "claude", ("read", "write"))
    async with alice:
        session_id = await new_session(alice)
        await say(alice, session_id, "before the start")
        listener = ChannelListener()
        client = stack.stdio_client(argv=["--watch", session_id], client={"mode": "legacy", "extensions": [listener]},
                                    SCS_AGENT_KEY=key)
        async with client:
            token = succeeded(await call_stdio(client, "authenticate_agent", agent_id="flag-bob",
                                               agent_type="claude"))["token"]
            # Alice writes through the HTTP sidecar (another process); bob's own message, stored by the stdio
            # process, wakes its watch, which finds the seq it was not handed in the database.
            hello = await say(alice, session_id, "hello from http")
            own = succeeded(await call_stdio(client, "add_message", session_id=session_id, content="bob here",
                                             auth_token=token))
            await listener.wait_for_seq(hello["seq"])
            assert own["seq"] == hello["seq"] + 1
            assert [m["content"] for m in listener.received] == ["hello from http"]
            assert listener.received[0]["meta"]["sender"] == "flag-alice"


def start_stdio(stack, *argv, **env):
    return subprocess.run([PYTHON, "-m", "mcp_sidecar", "--transport", "stdio", *argv], cwd=ROOT,
                          env={**stack.env, **env}, input="", capture_output=True, text=True, timeout=60)


async def test_the_watch_flag_is_checked_at_start(stack):
    no_key = await asyncio.to_thread(start_stdio, stack, "--watch", "session_0123456789abcdef")
    assert no_key.returncode != 0
    assert no_key.stderr.strip().splitlines()[-1] == (
        "mcp_sidecar: --watch needs an agent key: set SCS_AGENT_KEY to the key of the agent that watches")
    unknown = await asyncio.to_thread(start_stdio, stack, "--watch", "session_0123456789abcdef",
                                      SCS_AGENT_KEY=stack.issue_key("check-bob"))
    assert unknown.returncode != 0 and "--watch session_0123456789abcdef:" in unknown.stderr, unknown.stderr
    over_http = await asyncio.to_thread(subprocess.run, [PYTHON, "-m", "mcp_sidecar", "--watch", "session_0"],
                                        cwd=ROOT, env=stack.env, capture_output=True, text=True, timeout=60)
    assert over_http.returncode == 2 and "--watch works with --transport stdio" in over_http.stderr


class ResourceUpdates(MessageHandler):
    def __init__(self):
        self.uris = []

    async def on_resource_updated(self, message):
        self.uris.append(str(message.params.uri))


@pytest.mark.filterwarnings("ignore:resources/(un)?subscribe is removed")  # from 2026-07-28; Claude Code uses it
async def test_a_subscribed_session_resource_says_when_it_changed(stack):
    alice = await stack.agent("subscribe-alice", "claude", ("read", "write"))
    bob = await stack.agent("subscribe-bob", "claude", ("read", "write"))
    async with alice, bob:
        session_id = await new_session(alice)
        updates = ResourceUpdates()
        client = stack.mcp_client(headers={"Authorization": f"Bearer {bob.token}"}, mode="legacy",
                                  message_handler=updates)
        async with client:
            capabilities = client.initialize_result.capabilities
            assert capabilities.resources.subscribe is True
            assert capabilities.experimental == {"claude/channel": {}}
            uri = f"session://{session_id}"
            await client.session.subscribe_resource(uri)
            await say(alice, session_id, "a secret", visibility="private")  # bob may not see it: no update
            await say(alice, session_id, "hello")
            await eventually(lambda: updates.uris, within=10, what="the update")
            assert updates.uris == [uri]
            with pytest.raises(MCPError, match="SESSION_NOT_FOUND"):
                await client.session.subscribe_resource("session://session_0000000000000000")
            with pytest.raises(MCPError, match="only session://"):
                await client.session.subscribe_resource("agent://subscribe-bob/memory")

            other = await new_session(alice)
            await client.session.subscribe_resource(f"session://{other}")
            await client.session.unsubscribe_resource(uri)
            await say(alice, session_id, "after the unsubscribe")
            await say(alice, other, "marker")
            await eventually(lambda: len(updates.uris) > 1, within=10, what="the marker's update")
            assert updates.uris == [uri, f"session://{other}"]


@pytest.mark.django_db(transaction=True)
async def test_a_call_made_without_an_mcp_session_gets_a_structured_refusal(monkeypatch):
    from mcp_sidecar import auth, tools  # noqa: F401  (registers every tool)
    from mcp_sidecar.app import mcp
    from tests.helpers import agent_token

    # In-process calls carry no HTTP request: admit them as stdio does without SCS_AGENT_KEY (the shared key).
    monkeypatch.setattr(auth, "_stdio", {"enabled": True, "key": ""})
    token = agent_token("inproc-bob")
    for tool in ("watch_session", "unwatch_session"):
        result = await mcp.call_tool(tool, {"session_id": "session_0123456789abcdef", "auth_token": token})
        answer = result.structured_content
        assert answer["success"] is False and answer["code"] == "PUSH_UNAVAILABLE", answer


@pytest.mark.filterwarnings("ignore:resources/(un)?subscribe is removed")
async def test_a_client_admitted_by_its_agent_key_subscribes_without_a_token_until_the_key_is_revoked(stack):
    key = stack.issue_key("keyed-subscriber", "claude")
    async with await stack.agent("keyed-alice", "claude", ("read", "write")) as alice:
        session_id = await new_session(alice)
        updates = ResourceUpdates()
        async with stack.mcp_client(key=key, mode="legacy", message_handler=updates) as client:
            await no_watches(stack)
            await client.session.subscribe_resource(f"session://{session_id}")
            await say(alice, session_id, "hello")
            await eventually(lambda: updates.uris, within=10, what="the update")
            stack.manage("agent_key", "revoke", "keyed-subscriber")
            await say(alice, session_id, "after the revocation")
            await no_watches(stack, "the subscription ending with its key")
            assert updates.uris == [f"session://{session_id}"]
