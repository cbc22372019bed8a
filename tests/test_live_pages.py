"""The dashboard feed and session presence, in-process through the real ASGI stack."""

import json

import pytest
from asgiref.sync import sync_to_async
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import AsyncClient

from project.asgi import application
from realtime import conf, operations, tokens
from realtime.envelope import message_event

pytestmark = [pytest.mark.asyncio(loop_scope="function"), pytest.mark.django_db(transaction=True)]

ORIGIN = (b"origin", b"http://127.0.0.1:8081")


@pytest.fixture(autouse=True)
def fresh_layer():
    channel_layers.backends = {}
    yield
    channel_layers.backends = {}


async def user_cookie(username, staff=False):
    user = await sync_to_async(get_user_model().objects.create_user)(username, password="pw", is_staff=staff)
    client = AsyncClient()
    await client.aforce_login(user)
    return client.cookies["sessionid"].value


class Socket:
    def __init__(self, path, cookie=None):
        headers = [ORIGIN]
        if cookie:
            headers.append((b"cookie", f"sessionid={cookie}".encode()))
        self.comm = WebsocketCommunicator(application, path, headers=headers)

    async def connect(self):
        connected, self.refused_with = await self.comm.connect(timeout=3)
        return connected

    async def frame(self, kind=None):
        """The next frame (of type ``kind``, skipping others); ``{"closed": code}`` on close."""
        while True:
            output = await self.comm.receive_output(timeout=3)
            if output["type"] == "websocket.close":
                return {"closed": output.get("code")}
            frame = json.loads(output["text"])
            if kind is None or frame["type"] == kind:
                return frame

    async def send(self, frame):
        await self.comm.send_to(text_data=json.dumps(frame))

    async def close(self):
        await self.comm.disconnect()


async def store(session_id, content, sender="planner", visibility="public"):
    return await sync_to_async(operations.add_message)(
        session_id, sender=sender, sender_type="claude", content=content, visibility=visibility,
        may_write_admin_only=True,
    )


async def broadcast(session_id, *messages):
    response = await AsyncClient().post(
        f"/broadcast/{session_id}", data=json.dumps({"events": [message_event(m) for m in messages]}),
        content_type="application/json", headers={"Authorization": f"Bearer {conf.get('SCS_BROADCAST_SECRET')}"},
    )
    assert response.status_code == 202, response.content


async def new_session(purpose="dashboard feed"):
    return (await sync_to_async(operations.create_session)(purpose, "planner")).id


async def test_dashboard_socket_needs_a_signed_in_user():
    socket = Socket("/ws/dashboard/")
    assert not await socket.connect()
    assert socket.refused_with == 4401


@pytest.mark.parametrize("frame", [b"\x00", "", "not json", "[" * 5000 + "]" * 5000, "[1]", '{"type": "resume"}',
                                   "x" * 20_000])
async def test_the_dashboard_ignores_frames_it_cannot_use_and_still_answers_ping(frame):
    socket = Socket("/ws/dashboard/", await user_cookie("ivy"))
    assert await socket.connect()
    assert (await socket.frame())["type"] == "hello"
    kind = "bytes" if isinstance(frame, bytes) else "text"
    await socket.comm.send_input({"type": "websocket.receive", kind: frame})
    await socket.send({"type": "ping"})
    assert await socket.frame() == {"type": "pong"}
    await socket.close()


async def test_dashboard_receives_summaries_without_content_or_hidden_senders():
    session_id = await new_session("Migrate <payments>")
    member = Socket("/ws/dashboard/", await user_cookie("member"))
    boss = Socket("/ws/dashboard/", await user_cookie("boss", staff=True))
    for socket in (member, boss):
        assert await socket.connect()
        assert (await socket.frame())["type"] == "hello"
    public = await store(session_id, "PUBLIC TEXT", sender="planner")
    hidden = await store(session_id, "SECRET TEXT", sender="shadow", visibility="admin_only")
    await broadcast(session_id, public, hidden)
    seen = {}
    for name, socket in (("member", member), ("boss", boss)):
        frame = await socket.frame("session_summary")
        seen[name] = frame
        assert frame["session_id"] == session_id
        assert frame["purpose"] == "Migrate <payments>" and frame["created_by"] == "planner"
        assert frame["last_activity"] and "last_seq" not in frame
        assert "TEXT" not in json.dumps(frame)
    assert seen["member"]["senders"] == ["planner"] and seen["member"]["message_count"] == 1
    assert seen["boss"]["senders"] == ["planner", "shadow"] and seen["boss"]["message_count"] == 2
    for socket in (member, boss):
        await socket.close()


def stamp(message):
    return message_event(message)["data"]["timestamp"]


async def test_a_viewer_gets_no_frame_for_what_it_may_not_see_and_counts_only_what_it_may():
    hidden_only = await new_session("Incident review")
    mixed = await new_session("Release plan")
    member = Socket("/ws/dashboard/", await user_cookie("member"))
    boss = Socket("/ws/dashboard/", await user_cookie("boss", staff=True))
    for socket in (member, boss):
        assert await socket.connect()
        assert (await socket.frame())["type"] == "hello"

    await broadcast(hidden_only, await store(hidden_only, "one", visibility="admin_only"))
    first = await store(mixed, "public one")
    await broadcast(mixed, first)
    # The member's next frame is the public batch: the admin_only one never reached it.
    frame = await member.frame("session_summary")
    assert (frame["session_id"], frame["message_count"]) == (mixed, 1)
    assert [(await boss.frame("session_summary"))["session_id"] for _ in range(2)] == [hidden_only, mixed]

    # Hidden messages after the public one count for staff only and move no one else's last activity.
    hidden = [await store(mixed, f"hidden {n}", visibility=level) for n, level in
              enumerate(["admin_only", "private", "agent_only"])]
    await broadcast(mixed, *hidden)
    public = await store(mixed, "public two")
    await broadcast(mixed, public)
    frame = await member.frame("session_summary")
    assert (frame["message_count"], frame["last_activity"][:26]) == (2, stamp(public)[:26])
    assert (await boss.frame("session_summary"))["message_count"] == 4
    assert (await boss.frame("session_summary"))["message_count"] == 5
    later = await store(mixed, "hidden last", visibility="admin_only")
    await broadcast(mixed, later)
    marker = await new_session("marker")
    await broadcast(marker, await store(marker, "marker"))
    assert (await member.frame("session_summary"))["session_id"] == marker
    for socket in (member, boss):
        await socket.close()


async def test_the_count_is_read_again_after_events_another_process_delivered():
    session_id = await new_session()
    boss = Socket("/ws/dashboard/", await user_cookie("boss", staff=True))
    assert await boss.connect()
    await boss.frame("hello")
    await broadcast(session_id, await store(session_id, "one"))
    assert (await boss.frame("session_summary"))["message_count"] == 1
    await store(session_id, "two, delivered elsewhere")
    await broadcast(session_id, await store(session_id, "three"))
    assert (await boss.frame("session_summary"))["message_count"] == 3
    await boss.close()


async def test_presence_lists_who_is_watching_and_follows_leaving():
    session_id = await new_session()
    alice = Socket(f"/ws/{session_id}/", await user_cookie("alice", staff=True))
    assert await alice.connect()
    assert (await alice.frame("presence"))["viewers"] == [
        {"kind": "user", "id": "alice", "agent_type": "", "connections": 1}]
    bob = Socket(f"/ws/{session_id}/", await user_cookie("bob", staff=True))
    assert await bob.connect()
    both = ["alice", "bob"]
    assert [v["id"] for v in (await alice.frame("presence"))["viewers"]] == both
    # The newcomer learns about those already there from their answers.
    frame = await bob.frame("presence")
    while [v["id"] for v in frame["viewers"]] != both:
        frame = await bob.frame("presence")
    await bob.send({"type": "who"})
    assert [v["id"] for v in (await bob.frame("presence"))["viewers"]] == both
    await bob.close()
    assert [v["id"] for v in (await alice.frame("presence"))["viewers"]] == ["alice"]
    await alice.close()


async def test_presence_tells_other_viewers_only_counts_and_themselves():
    session_id = await new_session()
    boss = Socket(f"/ws/{session_id}/", await user_cookie("boss", staff=True))
    member = Socket(f"/ws/{session_id}/", await user_cookie("member"))
    agent = Socket(f"/ws/{session_id}/")
    for socket in (boss, member, agent):
        assert await socket.connect()
    await agent.send({"type": "auth", "token": tokens.issue("scout", "gemini", ["read"])[0]})
    await agent.frame("caught_up")
    for socket in (boss, member, agent):
        await socket.send({"type": "who"})
    full = await boss.frame("presence")
    while len(full["viewers"]) < 3:
        full = await boss.frame("presence")
    assert {(v["kind"], v["id"], v["agent_type"]) for v in full["viewers"]} == {
        ("user", "boss", ""), ("user", "member", ""), ("agent", "scout", "gemini")}
    for socket, me in ((member, ("user", "member", "")), (agent, ("agent", "scout", "gemini"))):
        frame = await socket.frame("presence")
        while frame["total"] < 3:
            frame = await socket.frame("presence")
        assert [(v["kind"], v["id"], v["agent_type"]) for v in frame["viewers"]] == [me]
        assert (frame["people"], frame["agents"], frame["total"]) == (2, 1, 3)
        assert "boss" not in json.dumps(frame)
    for socket in (boss, member, agent):
        await socket.close()


async def test_presence_frames_come_after_hello_and_caught_up():
    session_id = await new_session()
    await store(session_id, "before")
    viewer = Socket(f"/ws/{session_id}/?since=0", await user_cookie("carol"))
    assert await viewer.connect()
    kinds = [(await viewer.frame())["type"] for _ in range(4)]
    assert kinds == ["hello", "new_message", "caught_up", "presence"]
    await viewer.close()
