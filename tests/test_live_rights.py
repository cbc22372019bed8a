"""Open WebSockets carry exactly the rights their owner has now (real Daphne, real clients).

Account and credential changes are made the way an operator or a worker makes
them: in another process (``manage.py shell``), often by a queryset ``.update()``
that sends no signal, with the default in-memory channel layer, which does not
reach Daphne. ``realtime.live.access`` must still close the connections within 1 s.
Also here: the per-viewer connection cap and the exact origin check.
"""

import asyncio
import contextlib
import time

import pytest
import websockets

from realtime.live.closecodes import CLOSE_RECHECK, CLOSE_TOO_MANY, CLOSE_UNAUTHORIZED
from tests.stack import Stack

pytestmark = pytest.mark.asyncio(loop_scope="function")

CAP = 50
USERS = "from django.contrib.auth import get_user_model as m; U = m()._default_manager\n"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    running = Stack(tmp_path_factory.mktemp("rights"), SCS_MAX_CONNECTIONS_PER_VIEWER=CAP).start()
    yield running
    running.stop()


@pytest.fixture
async def admin(stack):
    """An agent that may write admin_only messages, and a fresh session it created."""
    async with await stack.agent(f"boss-{time.monotonic_ns()}", "admin") as agent:
        agent.session_id = (await agent.call("create_session", purpose="rights"))["session_id"]
        yield agent


async def post(agent, content, visibility="public"):
    result = await agent.call("add_message", session_id=agent.session_id, content=content, visibility=visibility)
    assert result["success"], result
    return result["seq"]


async def shell(stack, code):
    """``stack.shell`` off the event loop, so open sockets keep answering while the other process runs."""
    return await asyncio.to_thread(stack.shell, code)


def hello(watcher):
    return next((f for f in watcher.frames if f["type"] == "hello"), None)


def contents(watcher):
    return [m["data"]["content"] for m in watcher.messages]


async def open_all(watchers):
    await asyncio.gather(*(w.connect() for w in watchers))
    await asyncio.gather(*(w.wait(lambda w: w.caught_up or w.closed is not None) for w in watchers))
    return watchers


async def close_all(watchers):
    for watcher in watchers:
        with contextlib.suppress(Exception):
            await watcher.close()


async def closed_within(watchers, since, bound=1.0):
    """Every watcher is closed no later than ``bound`` seconds after ``since`` (a monotonic time)."""
    await asyncio.gather(*(w.wait_closed(timeout=max(0.01, since + bound - time.monotonic())) for w in watchers))
    return {w.closed for w in watchers}


async def unauthenticated(stack, session_id, cookie):
    """A new connection with this cookie is not signed in: its first frame gets it closed with 4401."""
    async with stack.watcher(session_id, cookie=cookie) as again:
        await again.send({"type": "ping"})
        await again.wait_closed()
        return again.closed == CLOSE_UNAUTHORIZED and hello(again) is None


# People


async def test_deleting_a_staff_user_elsewhere_closes_her_sockets_and_a_resume_replays_nothing(stack, admin):
    # Fails without realtime.live.access: the delete happens in another process, out of the layer's reach.
    cookie = stack.signed_in("hedda", staff=True)
    await post(admin, "SECRET-BEFORE", "admin_only")
    watcher = await stack.watcher(admin.session_id, since=0, cookie=cookie).connect()
    await watcher.wait_caught_up()
    assert hello(watcher)["viewer"]["is_admin"] and contents(watcher) == ["SECRET-BEFORE"]

    await shell(stack, USERS + "U.filter(username='hedda').delete()")
    deleted = time.monotonic()
    with contextlib.suppress(websockets.ConnectionClosed):
        await watcher.send({"type": "resume", "since": 0})  # checked exactly, not one interval late
    assert await closed_within([watcher], deleted) == {CLOSE_RECHECK}
    await post(admin, "SECRET-AFTER", "admin_only")
    assert contents(watcher) == ["SECRET-BEFORE"]
    assert await unauthenticated(stack, admin.session_id, cookie)


async def test_demotion_by_a_queryset_update_in_another_process_closes_within_a_second(stack, admin):
    cookie = stack.signed_in("olga", staff=True)
    watchers = await open_all([stack.watcher(admin.session_id, cookie=cookie) for _ in range(5)])
    assert all(hello(w)["viewer"]["is_admin"] for w in watchers)
    await shell(stack, USERS + "assert U.filter(username='olga').update(is_staff=False) == 1")
    assert await closed_within(watchers, time.monotonic()) == {CLOSE_RECHECK}
    async with stack.watcher(admin.session_id, cookie=cookie) as again:
        await again.wait_caught_up()
        assert hello(again)["viewer"]["is_admin"] is False
    await close_all(watchers)


async def test_demotion_while_connections_are_being_opened_leaves_none_with_staff_rights(stack, admin):
    # The window at connect time: the viewer used to be built from the handshake's user, read before
    # the connection could hear of any change. Rounds of 40 connections (5 for each of 8 staff users)
    # open while another process demotes them all, and one more round after it has.
    cookies = [stack.signed_in(f"mid{i}", staff=True) for i in range(8)]
    demote = asyncio.create_task(asyncio.to_thread(
        stack.shell, USERS + "U.filter(username__startswith='mid').update(is_staff=False)"))
    watchers, rounds_after = [], 0
    while rounds_after < 1:
        done = demote.done()
        watchers += await open_all([stack.watcher(admin.session_id, cookie=c) for c in cookies for _ in range(5)])
        rounds_after += done
        assert len(watchers) <= 8 * CAP, "the demotion took longer than opening every connection"
    await demote
    demoted = time.monotonic()
    as_staff = [w for w in watchers if hello(w) and hello(w)["viewer"]["is_admin"]]
    assert as_staff and len(as_staff) < len(watchers), "the connections did not race the demotion"
    assert await closed_within(as_staff, demoted) == {CLOSE_RECHECK}
    await post(admin, "ADMINS-ONLY", "admin_only")
    marker = await post(admin, "marker")
    survivors = [w for w in watchers if w.closed is None]
    await asyncio.gather(*(w.wait_for_seq(marker) for w in survivors))
    assert all(hello(w)["viewer"]["is_admin"] is False and "ADMINS-ONLY" not in contents(w) for w in survivors)
    # The rest were caught between reading the account and their hello: closed before sending anything.
    assert {w.closed for w in watchers if w not in survivors} == {CLOSE_RECHECK}
    await close_all(watchers)


async def test_a_password_change_in_another_process_closes_the_users_connections(stack, admin):
    cookie = stack.signed_in("piet")
    watcher = await stack.watcher(admin.session_id, cookie=cookie).connect()
    await watcher.wait_caught_up()
    await shell(stack, USERS + "u = U.get(username='piet'); u.set_password('a-new-password'); u.save()")
    assert await closed_within([watcher], time.monotonic()) == {CLOSE_RECHECK}
    assert await unauthenticated(stack, admin.session_id, cookie)  # the old session no longer signs in


# Agents

CREDENTIAL = (
    "from realtime import credentials, tokens\n"
    "c, _ = credentials.issue({agent!r}, 'claude', ('read', 'write'))\n"
    "print(c.key_id, tokens.issue({agent!r}, 'claude', ['read'], credential=c.key_id)[0])"
)

CHANGES = {
    "credential revoked": "from realtime import credentials; credentials.revoke({key_id!r})",
    "credential expired": "from django.utils import timezone; from realtime.models import AgentCredential as C; "
                          "C.objects.filter(key_id={key_id!r}).update(expires_at=timezone.now())",
    "token retired": "from realtime import credentials, tokens; credentials.retire(tokens.verify({token!r}), 'test')",
}


@pytest.mark.parametrize("change", list(CHANGES))
async def test_an_agent_socket_closes_within_a_second_when_its_token_stops_being_good(stack, admin, change):
    agent = f"agent-{change.replace(' ', '-')}"
    key_id, token = stack.shell(CREDENTIAL.format(agent=agent)).split()
    watchers = await open_all([stack.watcher(admin.session_id, token=token) for _ in range(3)])
    assert all(hello(w)["viewer"]["id"] == agent for w in watchers)
    await shell(stack, CHANGES[change].format(key_id=key_id, token=token))
    assert await closed_within(watchers, time.monotonic()) == {CLOSE_UNAUTHORIZED}
    async with stack.watcher(admin.session_id, token=token) as again:
        await again.wait_closed()
        assert again.closed == CLOSE_UNAUTHORIZED and hello(again) is None


# The connection cap


async def test_a_burst_of_connections_gets_exactly_the_cap_and_the_rest_are_told_why(stack, admin):
    # Fails without the cap (all 60 admitted) or with a count that races (more than CAP admitted).
    key_id, token = stack.shell(CREDENTIAL.format(agent="greedy")).split()
    watchers = await open_all([stack.watcher(admin.session_id, token=token) for _ in range(CAP + 10)])
    admitted = [w for w in watchers if w.closed is None]
    refused = [w for w in watchers if w.closed is not None]
    assert len(admitted) == CAP
    assert {w.closed for w in refused} == {CLOSE_TOO_MANY}
    assert all(w.frames[-1]["type"] == "error" and w.frames[-1]["code"] == "TOO_MANY_CONNECTIONS" for w in refused)
    # Across sessions too, and a slot freed is a slot to take.
    other = (await admin.call("create_session", purpose="another"))["session_id"]
    async with stack.watcher(other, token=token) as extra:
        await extra.wait_closed()
        assert extra.closed == CLOSE_TOO_MANY
    await admitted[0].close()
    async with stack.watcher(other, token=token) as extra:
        await extra.wait_caught_up()
    await close_all(watchers)


# Origins


@pytest.mark.parametrize("origin", [
    "http://127.0.0.1:9999",  # another port on the same host
    "https://127.0.0.1:{port}",  # another scheme
    "http://evil.example:{port}",  # another host, same port
    "https://localhost:4444",
    "http://127.0.0.1",  # the default port is a port too
])
async def test_a_websocket_from_any_other_origin_is_refused(stack, admin, origin):
    # Fails with Channels' AllowedHostsOriginValidator, which compares the host only.
    watcher = stack.watcher(admin.session_id, token=admin.token, origin=origin.format(port=stack.ws_port))
    with pytest.raises(websockets.InvalidStatus) as refused:
        await watcher.connect()
    assert refused.value.response.status_code == 403


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_the_servers_own_origins_are_accepted(stack, admin, host):
    async with stack.watcher(admin.session_id, token=admin.token, origin=f"http://{host}:{stack.ws_port}") as ok:
        await ok.wait_caught_up()
