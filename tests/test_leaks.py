"""Hidden content never reaches a reader who may not read it, on any path, nor the logs.

One session holds a message of each visibility, each carrying a unique marker
in its content and its metadata, plus a private message from a sender who wrote
nothing else. Readers who may not see them (an agent of the same type, an agent
of another type, a signed-in non-staff user) then use every path: live
WebSocket, resume, the session page, "load earlier", the dashboard (page and
live), every MCP read and search, resources, prompts and error answers. Finally
the logs of both processes are searched for the markers and for every secret.
"""

import asyncio
import json
import re
import secrets
from dataclasses import dataclass, field

import httpx
import pytest
import websockets

from tests.helpers import eventually, sign_in
from tests.stack import Stack

PASSWORD = "a-long-password-for-tests"
READERS = ["leak-peer", "leak-gemini"]  # the hidden messages mention them: their inboxes must not show them


def marker(kind):
    return f"{kind}-{secrets.token_hex(6)}"


@dataclass
class Leaks:
    stack: Stack
    session_id: str
    private_id: int
    # level -> marker; readers -> the levels they must not see
    markers: dict
    hidden_sender: str
    tokens: dict = field(default_factory=dict)
    cookie: str = ""
    live: dict = field(default_factory=dict)  # reader -> frames received live
    dashboard_live: list = field(default_factory=list)
    mcp_answers: dict = field(default_factory=dict)  # reader -> [(what, text)]


# What each reader may not read (the sender of the private messages is "leak-owner", type claude).
FORBIDDEN = {
    "peer": ("private", "admin_only", "hidden"),  # claude, like the owner
    "gemini": ("private", "agent_only", "admin_only", "hidden"),
    "user": ("private", "agent_only", "admin_only", "hidden"),
}


def forbidden_markers(world, reader):
    return [world.markers[level] for level in FORBIDDEN[reader]]


def assert_clean(world, reader, text, where):
    for hidden in forbidden_markers(world, reader):
        assert hidden not in text, f"{reader} saw {hidden} through {where}"
    assert world.hidden_sender not in text, f"{reader} learned of the hidden sender through {where}"


async def collect(url, origin, headers, until, frames):
    """Append every frame to ``frames`` until ``until(frame)``."""
    async with websockets.connect(url, origin=origin, additional_headers=headers) as socket:
        async with asyncio.timeout(20):
            async for text in socket:
                frames.append(json.loads(text))
                if until(frames[-1]):
                    return


async def build(stack):
    markers = {level: marker(level.upper()) for level in ("public", "private", "agent_only", "admin_only")}
    markers["hidden"] = marker("HIDDENSENDERSAYS")
    hidden_sender = f"leak-hidden-{secrets.token_hex(3)}"
    owner = await stack.agent("leak-owner", "claude")
    admin = await stack.agent("leak-admin", "admin")
    peer = await stack.agent("leak-peer", "claude")
    gemini = await stack.agent("leak-gemini", "gemini")
    hidden = await stack.agent(hidden_sender, "claude")
    stack.manage("shell", "-c", "from django.contrib.auth import get_user_model as m; "
                 f"m().objects.create_user('leak-viewer', password='{PASSWORD}')")
    cookie = sign_in(stack.http_url, "leak-viewer", PASSWORD)["sessionid"]
    agents = {"owner": owner, "admin": admin, "peer": peer, "gemini": gemini}
    world = Leaks(stack, "", 0, markers, hidden_sender, {k: a.token for k, a in agents.items()}, cookie)
    try:
        world.session_id = (await owner.call("create_session", purpose="leak hunt"))["session_id"]
        ws_url = stack.ws_url(world.session_id)
        readers = {"peer": {"Authorization": f"Bearer {peer.token}"},
                   "gemini": {"Authorization": f"Bearer {gemini.token}"},
                   "user": {"Cookie": f"sessionid={cookie}"}}
        end = marker("END")
        for reader in readers:
            world.live[reader] = []
        watchers = [asyncio.create_task(collect(
            ws_url, stack.origin, headers, lambda f: f.get("type") == "new_message" and f["data"]["content"] == end,
            world.live[reader])) for reader, headers in readers.items()]
        dashboard = asyncio.create_task(collect(
            f"ws://127.0.0.1:{stack.ws_port}/ws/dashboard/", stack.origin, readers["user"],
            # The user may read 3 of the 7 messages (two public ones and the public reply); it is told of those only.
            lambda f: f.get("type") == "session_summary" and f["message_count"] >= 3, world.dashboard_live))
        # Each consumer joins its group before its hello: once every hello is in, no live frame can be missed.
        joined = [*world.live.values(), world.dashboard_live]
        await eventually(lambda: all(any(f.get("type") == "hello" for f in frames) for frames in joined), 20,
                         "a hello on every socket")
        await owner.call("add_message", session_id=world.session_id, content=f"hello {markers['public']}")
        private = await owner.call("add_message", session_id=world.session_id, content=f"mine {markers['private']}",
                                   visibility="private", metadata={"note": markers["private"], "mentions": READERS})
        world.private_id = private["message_id"]
        await owner.call("add_message", session_id=world.session_id, content=f"claude {markers['agent_only']}",
                         visibility="agent_only", metadata={"note": markers["agent_only"], "mentions": READERS})
        await admin.call("add_message", session_id=world.session_id, content=f"root {markers['admin_only']}",
                         visibility="admin_only", metadata={"note": markers["admin_only"], "mentions": READERS})
        await hidden.call("add_message", session_id=world.session_id, content=markers["hidden"],
                          visibility="private", metadata={"mentions": READERS})
        await owner.call("add_message", session_id=world.session_id, content="reply", visibility="public",
                         parent_message_id=world.private_id)
        await owner.call("add_message", session_id=world.session_id, content=end)
        await asyncio.gather(*watchers, dashboard)
        for reader in ("peer", "gemini"):
            world.mcp_answers[reader] = await mcp_reads(agents[reader], world)
        # A broadcast with a wrong secret and calls with bad tokens: refusals are logged, secrets are not.
        async with httpx.AsyncClient(timeout=5) as http:
            await http.post(f"{stack.http_url}/broadcast/{world.session_id}", json={},
                            headers={"Authorization": f"Bearer {stack.api_key}"})
        await peer.raw("get_messages", session_id=world.session_id, auth_token=owner.token + "x")
        # A private message stored while Daphne is down: the sidecar's publisher holds it, fails, logs that
        # and retries until Daphne is back. The log check then covers a process that logged with hidden
        # content in hand.
        await asyncio.to_thread(stack.stop_daphne)
        await owner.call("add_message", session_id=world.session_id, content=f"outage {markers['private']}",
                         visibility="private", metadata={"note": markers["private"]})
        await eventually(lambda: "cannot publish" in stack.log("sidecar"), 20, "the publisher's warning")
        await asyncio.to_thread(stack.start_daphne)
        await eventually(lambda: bridge_drained(stack), 30, "the bridge's queue drained")
    finally:
        for agent in (*agents.values(), hidden):
            await agent.close()
    return world


def bridge_drained(stack):
    stats = stack.sidecar_health()["bridge"]
    return stats["queue_depth"] == 0 and stats["inflight"] == 0


async def mcp_reads(agent, world):
    """Every MCP read path, plus calls whose error answers mention the hidden message."""
    sid, markers = world.session_id, world.markers
    calls = [("get_messages", {"session_id": sid, "limit": 1000})]
    calls += [("get_messages", {"session_id": sid, "visibility_filter": level})
              for level in ("private", "agent_only", "admin_only")]
    calls += [
        ("get_messages", {"session_id": sid, "thread_id": world.private_id}),
        ("get_messages", {"session_id": sid, "since_seq": 0}),
        ("get_messages", {"session_id": sid, "unread_only": True}),
        ("get_session", {"session_id": sid}),
        ("get_inbox", {}),
        ("get_inbox", {"since": 0}),
        ("list_sessions", {"include_closed": True}),
        ("search_by_sender", {"session_id": sid, "sender": "leak-owner"}),
        ("search_by_sender", {"session_id": sid, "sender": world.hidden_sender}),
        ("search_by_sender", {"session_id": sid, "sender": "leak-admin"}),
        ("search_by_timerange", {"session_id": sid, "start_time": "2000-01-01T00:00:00Z",
                                 "end_time": "2100-01-01T00:00:00Z", "limit": 200}),
        # Errors that concern the hidden messages.
        ("add_message", {"session_id": sid, "content": "x", "parent_message_id": world.private_id + 100_000}),
        ("get_messages", {"session_id": sid, "thread_id": 10**9}),
        ("add_message", {"session_id": sid, "content": "x", "visibility": "admin_only"}),
    ]
    for level in ("private", "agent_only", "admin_only", "hidden"):
        for scope in ("all", "private", "public"):
            calls.append(("search_context", {"session_id": sid, "query": markers[level], "search_scope": scope,
                                             "fuzzy_threshold": 50}))
    answers = []
    for tool, arguments in calls:
        result = await agent.call(tool, **arguments)
        # Leave out the arguments the answer echoes back (a query naming a marker is no leak).
        answer = {key: value for key, value in result.items() if not (key in arguments and value == arguments[key])}
        answers.append((f"{tool}({arguments})", json.dumps(answer)))
    # Resources and prompts know the caller by Authorization: Bearer.
    async with world.stack.mcp_client(headers={"Authorization": f"Bearer {agent.token}"}) as client:
        contents = await client.read_resource(f"session://{sid}")
        answers.append(("resource session://", "".join(c.text for c in contents)))
        try:
            await client.read_resource("agent://leak-owner/memory")
            answers.append(("resource agent://leak-owner/memory", "read another agent's memory"))
        except Exception as exc:  # refused, as it must be; the refusal must not leak either
            answers.append(("resource agent://leak-owner/memory", str(exc)))
        prompt = await client.get_prompt("debug-session", {"session_id": sid})
        answers.append(("prompt debug-session", json.dumps([m.content.text for m in prompt.messages])))
    return answers


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    stack = Stack(tmp_path_factory.mktemp("leaks"), SCS_LOG_LEVEL="DEBUG").start()
    try:
        yield asyncio.run(build(stack))
    finally:
        stack.stop()


@pytest.mark.parametrize("reader", ["peer", "gemini", "user"])
def test_live_websocket(world, reader):
    frames = world.live[reader]
    assert frames[0]["type"] == "hello" and frames[-1]["type"] == "new_message"
    assert world.markers["public"] in json.dumps(frames)  # the reader did receive what it may read
    assert_clean(world, reader, json.dumps(frames), "live frames")


@pytest.mark.parametrize("reader", ["peer", "gemini", "user"])
async def test_resume_and_replay(world, reader):
    headers = ({"Cookie": f"sessionid={world.cookie}"} if reader == "user"
               else {"Authorization": f"Bearer {world.tokens[reader]}"})
    frames = []
    async with websockets.connect(world.stack.ws_url(world.session_id, since=0), origin=world.stack.origin,
                                  additional_headers=headers) as socket:
        async with asyncio.timeout(10):
            async for text in socket:
                frames.append(json.loads(text))
                if frames[-1]["type"] == "caught_up":
                    break
            await socket.send(json.dumps({"type": "resume", "since": 0}))
            async for text in socket:
                frames.append(json.loads(text))
                if frames[-1]["type"] == "caught_up":
                    break
    replayed = [f for f in frames if f["type"] == "new_message"]
    assert replayed and world.markers["public"] in json.dumps(replayed)
    assert_clean(world, reader, json.dumps(frames), "replay and resume")


def test_session_page_and_earlier_messages_for_a_user(world):
    with httpx.Client(base_url=world.stack.http_url, cookies={"sessionid": world.cookie}, timeout=10) as client:
        page = client.get(f"/sessions/{world.session_id}/")
        earlier = client.get(f"/sessions/{world.session_id}/messages?before=1000")
        dashboard = client.get("/")
    assert page.status_code == earlier.status_code == dashboard.status_code == 200
    assert world.markers["public"] in page.text and world.markers["public"] in earlier.text
    assert_clean(world, "user", page.text, "the session page")
    assert_clean(world, "user", earlier.text, "load earlier")
    assert_clean(world, "user", dashboard.text, "the dashboard")


def test_live_dashboard_for_a_user(world):
    summaries = [f for f in world.dashboard_live if f["type"] == "session_summary"]
    assert summaries and any("leak-owner" in f["senders"] for f in summaries)
    assert max(f["message_count"] for f in summaries) == 3  # never a count of what the user may not read
    assert_clean(world, "user", json.dumps(world.dashboard_live), "the live dashboard")


@pytest.mark.parametrize("reader", ["peer", "gemini"])
def test_every_mcp_read_search_resource_prompt_and_error(world, reader):
    answers = world.mcp_answers[reader]
    assert any(world.markers["public"] in text for _, text in answers)
    if reader == "peer":  # same agent type as the owner: agent_only is readable, and found
        assert any(world.markers["agent_only"] in text for _, text in answers)
    for what, text in answers:
        assert_clean(world, reader, text, what)
    readable = dict(answers)
    assert world.markers["public"] in readable["resource session://"]
    assert world.markers["public"] in readable["prompt debug-session"]
    assert "PERMISSION_DENIED" in readable["resource agent://leak-owner/memory"]
    inbox = json.loads(readable["get_inbox({'since': 0})"])
    # Each reader is mentioned by the four hidden-level messages; its inbox holds what it may read of them.
    assert [m["visibility"] for m in inbox["messages"]] == (["agent_only"] if reader == "peer" else [])


def test_logs_hold_no_secret_and_no_hidden_content(world):
    stack = world.stack
    logs = {name: stack.log(name) for name in ("daphne", "sidecar")}
    # The logs hold what the world provoked (else finding no secret in them would prove nothing):
    assert "broadcast refused: wrong secret" in logs["daphne"]  # logged without the secret it was sent
    assert f"MCP sidecar on {stack.mcp_url}" in logs["sidecar"]
    assert re.search(rf"cannot publish \(\w+ posting to {re.escape(stack.env['SCS_BROADCAST_URL'])}/broadcast/",
                     logs["sidecar"])
    secrets_ = {"API key": stack.api_key, "JWT secret": stack.jwt_secret,
                "broadcast secret": stack.broadcast_secret, "Django secret key": stack.env["DJANGO_SECRET_KEY"],
                **{f"{name}'s token": token for name, token in world.tokens.items()},
                "a session cookie": world.cookie}
    hidden = {level: world.markers[level] for level in ("private", "agent_only", "admin_only", "hidden")}
    for name, text in logs.items():
        for what, value in {**secrets_, **hidden}.items():
            assert value not in text, f"the {name} log holds {what}"
