"""``wait_for_messages`` on real processes: who is woken, by what, and what each waiter gets.

Daphne and the HTTP sidecar run as in production (``tests.stack``); agents are real MCP clients.
No test bounds a wall-clock time (timing goals live in ``python -m bench wake``): a wake is shown
by a call that returns before its long timeout with the message, never by how fast.
"""

import asyncio
import contextlib
import re
import sys
import textwrap

import httpx
import pytest

from tests.helpers import eventually, new_session, say, succeeded
from tests.stack import ROOT

pytestmark = pytest.mark.asyncio(loop_scope="function")

LONG = 120  # a timeout no test reaches when the waiter is woken


def wait(agent, session_id, since_seq=0, timeout=LONG, **arguments):
    """A ``wait_for_messages`` call, started in the background."""
    return asyncio.ensure_future(
        agent.call("wait_for_messages", session_id=session_id, since_seq=since_seq, timeout=timeout, **arguments))


async def waiting(stack, count):
    """Until the sidecar holds ``count`` waiters of sessions."""
    await eventually(lambda: stack.sidecar_health()["wake"]["session_waiters"] == count, 30,
                     f"{count} waiters in the sidecar", interval=0.05)


def contents(result):
    return [message["content"] for message in succeeded(result)["messages"]]


async def test_a_waiter_gets_what_it_may_see_and_passes_over_the_rest(stack):
    async with await stack.agent("wait-a", "claude", ["read", "write"]) as alice, \
            await stack.agent("wait-b", "claude", ["read", "write"]) as bob, \
            await stack.agent("wait-root", "admin") as root:
        session_id = await new_session(alice)
        bobs, roots = wait(bob, session_id), wait(root, session_id)
        await waiting(stack, 2)
        first = await say(alice, session_id, "for everyone")
        for result in await asyncio.gather(bobs, roots):
            assert contents(result) == ["for everyone"] and result["last_seq"] == first["seq"], result
            assert not result["timed_out"] and result["messages"][0]["sender"] == "wait-a"

        bobs, roots = wait(bob, session_id, first["seq"], timeout=2), wait(root, session_id, first["seq"])
        await waiting(stack, 2)
        secret = await say(alice, session_id, "only alice", visibility="private")
        root_result = await roots
        assert contents(root_result) == ["only alice"] and root_result["last_seq"] == secret["seq"]
        bob_result = await bobs
        assert bob_result == {"success": True, "messages": [], "last_seq": secret["seq"], "timed_out": True}

        # Own messages are passed over unless asked for.
        mine = await say(bob, session_id, "from bob")
        result = await bob.call("wait_for_messages", session_id=session_id, since_seq=secret["seq"], timeout=0)
        assert result == {"success": True, "messages": [], "last_seq": mine["seq"], "timed_out": True}
        result = await bob.call("wait_for_messages", session_id=session_id, since_seq=secret["seq"], timeout=0,
                                include_own=True)
        assert contents(result) == ["from bob"]
    await waiting(stack, 0)


async def test_host_code_in_another_process_wakes_a_waiting_agent(stack):
    async with await stack.agent("wait-host", "claude", ["read", "write"]) as agent:
        session_id = await new_session(agent)
        waiter = wait(agent, session_id)
        await waiting(stack, 1)
        code = textwrap.dedent(f"""
            from realtime import publish
            publish.add_message({session_id!r}, "from host code", sender="importer")
        """)
        await asyncio.to_thread(stack.shell, code)
        result = await waiter
        assert contents(result) == ["from host code"] and result["messages"][0]["sender"] == "importer"
        # Through Daphne's wake relay (the safety poll would have woken it too, a second later).
        await eventually(lambda: stack.sidecar_health()["wake"]["stream"]["events"] >= 1, 30, "the relayed event")
        assert stack.sidecar_health()["wake"]["stream"]["source"] == "daphne"


async def test_a_persons_post_from_the_page_wakes_a_waiting_agent_which_marks_it_read(stack):
    cookie = stack.signed_in("wait-person")
    async with await stack.agent("wait-reader", "claude", ["read", "write"]) as agent:
        session_id = await new_session(agent)
        waiter = wait(agent, session_id, mark_read=True)
        await waiting(stack, 1)
        async with httpx.AsyncClient(base_url=stack.http_url, timeout=10, cookies={"sessionid": cookie}) as person:
            page = await person.get(f"/sessions/{session_id}/")
            csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
            posted = await person.post(f"/sessions/{session_id}/post", data={"content": "from a person"},
                                       headers={"Accept": "application/json", "X-CSRFToken": csrf})
            assert posted.status_code == 201, posted.text
        result = await waiter
        assert contents(result) == ["from a person"] and result["messages"][0]["sender_type"] == "human"
        assert succeeded(await agent.call("get_messages", session_id=session_id, unread_only=True))["messages"] == []
        listed = succeeded(await agent.call("list_sessions"))["sessions"]
        assert next(s for s in listed if s["id"] == session_id)["unread"] == 0


async def test_a_wait_ends_once_its_token_is_revoked_in_another_process(stack):
    async with await stack.agent("wait-revoked", "claude", ["read", "write"]) as agent:
        session_id = await new_session(agent)
        waiter = wait(agent, session_id)
        await waiting(stack, 1)
        await asyncio.to_thread(stack.shell, "from realtime import credentials, tokens; "
                                             f"credentials.retire(tokens.verify({agent.token!r}), 'revoked')")
        result = await waiter  # long before its 120 s timeout
        assert result["success"] is False and result["code"] == "TOKEN_REVOKED", result
    await waiting(stack, 0)


async def test_refusals_are_structured(stack):
    from realtime import conf

    async with await stack.agent("wait-errors", "claude", ["read", "write"]) as agent:
        session_id = await new_session(agent)
        await say(agent, session_id, "one")
        cases = [
            ({"session_id": "session_0000000000000000"}, "SESSION_NOT_FOUND"),
            ({"session_id": "nope"}, "INVALID_SESSION_ID"),
            ({"session_id": session_id, "since_seq": -1}, "INVALID_ARGUMENT"),
            ({"session_id": session_id, "since_seq": 1.5}, "INVALID_ARGUMENT"),
            ({"session_id": session_id, "since_seq": "later"}, "INVALID_ARGUMENT"),
            ({"session_id": session_id, "since_seq": 2}, "INVALID_ARGUMENT"),  # past the newest seq (1)
            ({"session_id": session_id, "timeout": conf.get("SCS_WAIT_MAX_TIMEOUT") + 1}, "INVALID_ARGUMENT"),
            ({"session_id": session_id, "timeout": -1}, "INVALID_ARGUMENT"),
            ({"session_id": session_id, "limit": 0}, "INVALID_ARGUMENT"),
        ]
        for arguments, code in cases:
            result = await agent.call("wait_for_messages", **arguments)
            assert result["success"] is False and result["code"] == code and result["hint"], (arguments, result)
        past = await agent.call("wait_for_messages", session_id=session_id, since_seq=2)
        assert "newest" in past["error"] and "at most 1" in past["hint"], past
        reader = await stack.agent("wait-unauthenticated", "claude")
        try:
            result = await reader.raw("wait_for_messages", session_id=session_id)
            assert result["code"] == "AUTH_REQUIRED", result
        finally:
            await reader.close()
    await waiting(stack, 0)


async def test_two_hundred_waiters_over_twenty_sessions_each_get_exactly_their_messages(stack):
    """Ten agents of two types each wait on twenty sessions at once; four writers post every visibility."""
    readers = [await stack.agent(f"crowd-{k}", "claude" if k % 2 else "gemini", ["read", "write"]) for k in range(10)]
    writers = []
    try:
        sessions = [await new_session(readers[0], f"crowd {n}") for n in range(20)]
        per_session = 8
        total = per_session  # every session gets the same number of messages

        async def follow(reader, session_id):
            """Messages this reader is handed until the cursor reaches the last one."""
            got, cursor = [], 0
            while cursor < total:
                result = succeeded(await reader.call("wait_for_messages", session_id=session_id, since_seq=cursor))
                assert result["last_seq"] >= cursor
                got.extend(result["messages"])
                cursor = result["last_seq"]
            return [(message["seq"], message["content"]) for message in got]

        followers = {(reader.agent_id, session_id): asyncio.ensure_future(follow(reader, session_id))
                     for reader in readers for session_id in sessions}
        await waiting(stack, 200)
        # Connected now rather than before the wait: a client's idle keep-alive connection may be closed by the
        # server (after 5 s) just as the client reuses it, which fails the call.
        writers = [await stack.agent(f"crowd-writer-{k}", "claude" if k % 2 else "gemini", ["read", "write"])
                   for k in range(3)] + [await stack.agent("crowd-root", "admin")]

        visibilities = ["public", "private", "agent_only", "admin_only"]
        written = {}  # (session, seq) -> (content, sender, sender type, visibility)

        async def write(session_id):
            for n in range(per_session):
                writer = writers[n % len(writers)]
                visibility = "admin_only" if writer.agent_id == "crowd-root" else visibilities[n % 3]
                content = f"{session_id} {n} {visibility} by {writer.agent_id}"
                seq = (await say(writer, session_id, content, visibility=visibility))["seq"]
                written[session_id, seq] = (content, writer.agent_id, visibility)

        await asyncio.gather(*(write(session_id) for session_id in sessions))
        results = dict(zip(followers, await asyncio.gather(*followers.values()), strict=True))

        types = {writer.agent_id: ("claude" if k % 2 else "gemini") for k, writer in enumerate(writers[:3])}
        types["crowd-root"] = "admin"
        for reader in readers:
            reader_type = "claude" if int(reader.agent_id.split("-")[1]) % 2 else "gemini"
            for session_id in sessions:
                expected = []
                for (session, seq), (content, sender, visibility) in sorted(written.items()):
                    if session != session_id:
                        continue
                    if visibility == "public" or (visibility == "agent_only" and types[sender] == reader_type):
                        expected.append((seq, content))
                assert results[reader.agent_id, session_id] == expected, (reader.agent_id, session_id)
        assert any(results.values()) and not all(len(r) == total for r in results.values())
    finally:
        for agent in readers + writers:
            with contextlib.suppress(Exception):  # a failure above is the one to report
                await agent.close()
    await waiting(stack, 0)


CLIENT = textwrap.dedent("""
    import asyncio, sys
    from fastmcp import Client
    from fastmcp.client.transports import StreamableHttpTransport

    async def main(url, key, token, session_id):
        async with Client(StreamableHttpTransport(url, headers={"X-API-Key": key})) as client:
            print("waiting", flush=True)
            await client.call_tool("wait_for_messages", {"session_id": session_id, "timeout": 120,
                                                        "auth_token": token})

    asyncio.run(main(*sys.argv[1:]))
""")


async def test_a_client_that_disconnects_or_cancels_mid_wait_frees_its_waiter(stack):
    async with await stack.agent("wait-leaver", "claude", ["read", "write"]) as agent:
        session_id = await new_session(agent)
        # Cancelled: the MCP client sends notifications/cancelled when its call is cancelled.
        call = wait(agent, session_id)
        await waiting(stack, 1)
        call.cancel()
        await waiting(stack, 0)
        # Disconnected: a client process killed mid-wait drops its HTTP connection.
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", CLIENT, stack.mcp_url, stack.api_key, agent.token, session_id, cwd=str(ROOT),
            stdout=asyncio.subprocess.PIPE)
        try:
            assert (await process.stdout.readline()).strip() == b"waiting"
            await waiting(stack, 1)
            process.kill()
            await process.wait()
            await waiting(stack, 0)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        # Disconnected on the 2025 protocol (an initialize handshake, then a POST answered once the call ends):
        # the MCP SDK does not end that handler when the client goes; the tool itself watches the connection.
        headers = {"X-API-Key": stack.api_key, "Accept": "application/json, text/event-stream"}
        async with httpx.AsyncClient(timeout=30) as http:
            hello = await http.post(stack.mcp_url, headers=headers, json={
                "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                    "protocolVersion": "2025-06-18", "capabilities": {},
                    "clientInfo": {"name": "old", "version": "1"}}})
            assert hello.status_code == 200, hello.text
            headers |= {"mcp-session-id": hello.headers["mcp-session-id"], "mcp-protocol-version": "2025-06-18"}
            await http.post(stack.mcp_url, headers=headers, json={"jsonrpc": "2.0",
                                                                  "method": "notifications/initialized"})
            call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "wait_for_messages",
                    "arguments": {"session_id": session_id, "timeout": LONG, "auth_token": agent.token}}}
            answer = asyncio.ensure_future(http.post(stack.mcp_url, headers=headers, json=call))
            await waiting(stack, 1)
            answer.cancel()  # closes the connection, the answer unread
            with contextlib.suppress(asyncio.CancelledError):
                await answer
            await waiting(stack, 0)
        # The session still wakes the next waiter.
        call = wait(agent, session_id, include_own=True)
        await waiting(stack, 1)
        await say(agent, session_id, "still here")
        assert contents(await call) == ["still here"]


async def test_a_sidecar_restarted_mid_wait_fails_the_call_and_the_retry_loses_nothing(fresh_stack):
    stack = fresh_stack(SCS_MAX_WAITERS=2)
    async with await stack.agent("restart-writer", "claude", ["read", "write"]) as writer:
        session_id = await new_session(writer)
        cursor = (await say(writer, session_id, "before"))["seq"]
        agent = await stack.agent("restart-waiter", "claude", ["read", "write"])
        calls = [wait(agent, session_id, cursor) for _ in range(2)]
        await waiting(stack, 2)
        refused = await agent.call("wait_for_messages", session_id=session_id, since_seq=cursor, timeout=LONG)
        assert refused["code"] == "TOO_MANY_WAITERS" and refused["hint"], refused

        stack.stop_sidecar()
        for outcome in await asyncio.gather(*calls, return_exceptions=True):
            assert isinstance(outcome, Exception) or outcome["success"] is False, outcome
        with contextlib.suppress(Exception):
            await agent.close()
        await asyncio.to_thread(stack.shell, textwrap.dedent(f"""
            from realtime import publish
            publish.add_message({session_id!r}, "while the sidecar was down", sender="importer")
        """))
        stack.start_sidecar()

        async with stack.mcp_client() as client:  # a new connection, the same token and cursor
            answer = await client.call_tool("wait_for_messages", {
                "session_id": session_id, "since_seq": cursor, "timeout": LONG, "auth_token": agent.token})
            assert contents(answer.structured_content) == ["while the sidecar was down"]
            follow = asyncio.ensure_future(client.call_tool("wait_for_messages", {
                "session_id": session_id, "since_seq": answer.structured_content["last_seq"], "timeout": LONG,
                "auth_token": agent.token}))
            await waiting(stack, 1)
            await say(writer, session_id, "after the restart")
            assert contents((await follow).structured_content) == ["after the restart"]


async def test_a_stdio_sidecar_is_woken_through_daphne_and_by_the_safety_poll_while_daphne_is_down(fresh_stack):
    stack = fresh_stack()
    async with stack.stdio_client() as client, await stack.agent("stdio-writer", "claude") as writer:
        async def call(tool, **arguments):
            return (await client.call_tool(tool, arguments, raise_on_error=False)).structured_content

        token = succeeded(await call("authenticate_agent", agent_id="stdio-waiter", agent_type="admin",
                                     requested_permissions=["read", "write", "admin"]))["token"]

        async def wake_figures():
            return succeeded(await call("get_performance_metrics", auth_token=token))["wake"]

        async def waiters_in_stdio(count):
            for _ in range(600):
                if (await wake_figures())["session_waiters"] == count:
                    return
                await asyncio.sleep(0.05)
            raise AssertionError(f"the stdio sidecar never held {count} waiters")

        session_id = await new_session(writer)
        waiter = asyncio.ensure_future(call("wait_for_messages", session_id=session_id, timeout=LONG,
                                            auth_token=token))
        await waiters_in_stdio(1)
        first = await say(writer, session_id, "through daphne")
        assert contents(await waiter) == ["through daphne"]
        for _ in range(600):  # the relay brought it (under load the safety poll may have woken the waiter first)
            figures = await wake_figures()
            if figures["stream"]["events"] >= 1:
                break
            await asyncio.sleep(0.05)
        assert figures["stream"]["source"] == "daphne" and figures["stream"]["events"] >= 1, figures

        stack.stop_daphne()
        for _ in range(600):
            if not (await wake_figures())["stream"]["connected"]:
                break
            await asyncio.sleep(0.05)
        waiter = asyncio.ensure_future(call("wait_for_messages", session_id=session_id, since_seq=first["seq"],
                                            timeout=LONG, auth_token=token))
        await waiters_in_stdio(1)
        down = await say(writer, session_id, "while daphne is down")
        assert contents(await waiter) == ["while daphne is down"]
        figures = await wake_figures()
        assert not figures["stream"]["connected"] and figures["stream"]["poll_wakes"] >= 1, figures

        # Daphne back: the stream reconnects and brings the next message again.
        stack.start_daphne()
        for _ in range(600):
            figures = await wake_figures()
            if figures["stream"]["connected"]:
                break
            await asyncio.sleep(0.05)
        assert figures["stream"]["connects"] >= 2, figures
        relayed = figures["stream"]["events"]
        waiter = asyncio.ensure_future(call("wait_for_messages", session_id=session_id, since_seq=down["seq"],
                                            timeout=LONG, auth_token=token))
        await waiters_in_stdio(1)
        await say(writer, session_id, "daphne is back")
        assert contents(await waiter) == ["daphne is back"]
        for _ in range(600):
            if (await wake_figures())["stream"]["events"] > relayed:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the reconnected stream brought nothing")


async def test_on_redis_a_waiter_wakes_for_a_message_stored_through_another_sidecar(scaled_stack):
    ports = [scaled_stack.mcp_port, scaled_stack.failover_mcp_port]  # publishing on the layer, and over HTTP
    for waiter_port, writer_port in (ports, ports[::-1]):
        here, there = scaled_stack.via(mcp_port=waiter_port), scaled_stack.via(mcp_port=writer_port)
        async with await here.agent(f"redis-waiter-{waiter_port}", "claude") as agent, \
                await there.agent(f"redis-writer-{writer_port}", "claude") as writer:
            session_id = await new_session(writer)
            call = wait(agent, session_id)
            await waiting(here, 1)
            await say(writer, session_id, f"from {writer_port}")
            assert contents(await call) == [f"from {writer_port}"]
            # The safety poll may have woken it first on a busy machine: the stream's event still comes.
            await eventually(lambda h=here: h.sidecar_health()["wake"]["stream"]["events"] >= 1, 30,
                             "the message on the waiting sidecar's wake stream")
            stream = here.sidecar_health()["wake"]["stream"]
            assert stream["source"] == "channel_layer" and stream["connected"], stream


async def test_a_sidecar_with_the_wrong_secret_is_refused_by_the_relay_says_why_and_retries_rarely(stack):
    port = stack.add_sidecar(SCS_BROADCAST_SECRET="not-the-broadcast-secret")
    other = stack.via(mcp_port=port)
    other.broadcast_secret = "not-the-broadcast-secret"  # its /health details open to its own secret
    await eventually(lambda: other.sidecar_health()["wake"]["stream"]["failures"] >= 1, 30, "a refused connect")
    stream = other.sidecar_health()["wake"]["stream"]
    assert not stream["connected"] and "HTTP 403" in stream["last_error"], stream
    assert "SCS_BROADCAST_SECRET" in stream["last_error"]
    await asyncio.sleep(2)
    assert other.sidecar_health()["wake"]["stream"]["failures"] == 1  # the next try is a minute away
