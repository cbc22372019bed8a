"""``SessionConsumer`` in-process, through the real ASGI stack (origin check, auth middleware)."""

import json

import pytest
from asgiref.sync import sync_to_async
from channels.layers import channel_layers, get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import AsyncClient

from project.asgi import application
from realtime import operations, tokens
from realtime.envelope import encode, message_event
from realtime.live import consumers
from realtime.live.consumers import session_group
from realtime.models import Message

pytestmark = [pytest.mark.asyncio(loop_scope="function"), pytest.mark.django_db(transaction=True)]

ORIGIN = b"http://127.0.0.1:8081"


@pytest.fixture(autouse=True)
def fresh_layer():
    channel_layers.backends = {}  # a fresh in-memory layer bound to this test's event loop
    yield
    channel_layers.backends = {}


def token(agent_id="alice", agent_type="claude", permissions=("read", "write"), **kwargs):
    return tokens.issue(agent_id, agent_type, list(permissions), **kwargs)[0]


class Viewer:
    """One WebSocket connection, with helpers that skip presence frames."""

    def __init__(self, session_id, *, bearer=None, cookie=None, origin=ORIGIN, query=""):
        headers = [(b"origin", origin)] if origin else []
        if bearer is not None:
            headers.append((b"authorization", f"Bearer {bearer}".encode()))
        if cookie is not None:
            headers.append((b"cookie", f"sessionid={cookie}".encode()))
        self.comm = WebsocketCommunicator(application, f"/ws/{session_id}/{query}", headers=headers)
        self.frames = []

    async def connect(self):
        return await self.comm.connect(timeout=3)

    async def send(self, frame):
        await self.comm.send_to(text_data=frame if isinstance(frame, str) else json.dumps(frame))

    async def next(self):
        """The next frame that is not a presence update; ``{"closed": code}`` when the server closed."""
        while True:
            output = await self.comm.receive_output(timeout=3)
            if output["type"] == "websocket.close":
                return {"closed": output.get("code", 1000)}
            frame = json.loads(output["text"])
            if frame["type"] != "presence":
                self.frames.append(frame)
                return frame

    async def until(self, kind):
        """Frames up to and including the next one of type ``kind``."""
        seen = []
        while not seen or seen[-1].get("type") != kind:
            seen.append(await self.next())
            assert "closed" not in seen[-1], seen
        return seen

    async def upto_pong(self):
        """Every frame sent before the answer to a ping: what this connection's own frames caused."""
        await self.send({"type": "ping"})
        return (await self.until("pong"))[:-1]

    async def until_seq(self, seq):
        """Frames up to and including the first message numbered ``seq`` or later."""
        seen = []
        while not seen or seen[-1].get("type") != "new_message" or seen[-1]["seq"] < seq:
            seen.append(await self.next())
            assert "closed" not in seen[-1], seen
        return seen

    async def upto_marker(self, session_id):
        """Every frame sent before a public marker message delivered now through the channel layer.

        The layer delivers one channel's events in order, so this proves what did (not) arrive.
        """
        marker = await store(session_id, "marker")
        await deliver(session_id, marker)
        frames = await self.until_seq(marker.seq)
        assert frames[-1]["data"]["content"] == "marker"
        return frames[:-1]

    async def ready(self):
        """Connected and authenticated: the frames from hello to caught_up."""
        return await self.until("caught_up")

    async def close(self):
        await self.comm.disconnect()


@pytest.fixture
async def session_id():
    return (await sync_to_async(operations.create_session)("consumer tests", "alice")).id


async def store(session_id, content, sender="alice", sender_type="claude", visibility="public"):
    return await sync_to_async(operations.add_message)(
        session_id, sender=sender, sender_type=sender_type, content=content, visibility=visibility,
        may_write_admin_only=True,
    )


async def deliver(session_id, *messages):
    """What the broadcast view does: group-send these messages' events to the session's group."""
    await get_channel_layer().group_send(
        session_group(session_id), {"type": "session.events", "events": [message_event(m) for m in messages]}
    )


def seqs(frames):
    return [f["seq"] for f in frames if f.get("type") == "new_message"]


async def user_cookie(username, staff=False):
    user = await sync_to_async(get_user_model().objects.create_user)(username, password="pw-for-tests",
                                                                     is_staff=staff)
    client = AsyncClient()
    await client.aforce_login(user)
    return client.cookies["sessionid"].value


# Authentication


async def test_no_credentials_is_closed_4401_after_a_non_auth_frame(session_id):
    viewer = Viewer(session_id)
    assert (await viewer.connect())[0]
    await viewer.send({"type": "ping"})
    assert await viewer.next() == {"closed": consumers.CLOSE_UNAUTHORIZED}
    assert viewer.frames == []


async def test_no_credentials_is_closed_4401_when_no_auth_frame_comes(session_id, monkeypatch):
    monkeypatch.setattr(consumers, "AUTH_TIMEOUT", 0.05)
    viewer = Viewer(session_id)
    assert (await viewer.connect())[0]
    assert await viewer.next() == {"closed": consumers.CLOSE_UNAUTHORIZED}


BAD_TOKENS = {
    "garbage": lambda: "not-a-jwt",
    "empty": lambda: "",
    "not a string": lambda: 42,
    "forged": lambda: tokens.jwt.encode({"sub": "alice", "iss": tokens.ISSUER, "iat": 0, "exp": 2**40,
                                        "agent_type": "claude", "permissions": ["read"]}, "x" * 32,
                                       algorithm="HS256"),
    "expired": lambda: token(ttl=-10),
    "no read permission": lambda: token(permissions=("write",)),
}


@pytest.mark.parametrize("kind", list(BAD_TOKENS))
async def test_bad_token_in_auth_frame_is_closed_4401(session_id, kind):
    viewer = Viewer(session_id)
    assert (await viewer.connect())[0]
    await viewer.send({"type": "auth", "token": BAD_TOKENS[kind]()})
    assert await viewer.next() == {"closed": consumers.CLOSE_UNAUTHORIZED}
    assert viewer.frames == []


@pytest.mark.parametrize("kind", ["garbage", "forged", "expired", "no read permission"])
async def test_bad_bearer_header_is_closed_4401_at_once(session_id, kind):
    viewer = Viewer(session_id, bearer=BAD_TOKENS[kind]())
    await viewer.connect()
    assert await viewer.next() == {"closed": consumers.CLOSE_UNAUTHORIZED}
    assert viewer.frames == []


async def test_auth_frame_authenticates(session_id):
    viewer = Viewer(session_id)
    assert (await viewer.connect())[0]
    await viewer.send({"type": "auth", "token": token("bob")})
    hello, caught_up = await viewer.ready()
    assert hello["type"] == "hello" and hello["session_id"] == session_id and hello["last_seq"] == 0
    assert hello["viewer"] == {"kind": "agent", "id": "bob", "agent_type": "claude", "is_admin": False}
    assert caught_up == {"type": "caught_up", "last_seq": 0}


async def test_bearer_header_authenticates(session_id):
    viewer = Viewer(session_id, bearer=token("carl", "gemini"))
    assert (await viewer.connect())[0]
    hello, _ = await viewer.ready()
    assert hello["viewer"]["id"] == "carl" and hello["viewer"]["agent_type"] == "gemini"


async def test_signed_in_user_authenticates_by_session_cookie(session_id):
    viewer = Viewer(session_id, cookie=await user_cookie("erin"))
    assert (await viewer.connect())[0]
    hello, _ = await viewer.ready()
    assert hello["viewer"] == {"kind": "user", "id": "erin", "agent_type": "", "is_admin": False}


async def test_unknown_session_cookie_is_not_a_user(session_id):
    viewer = Viewer(session_id, cookie="no-such-session")
    assert (await viewer.connect())[0]
    await viewer.send({"type": "ping"})
    assert await viewer.next() == {"closed": consumers.CLOSE_UNAUTHORIZED}


async def test_auth_frame_after_authentication_is_an_error_not_a_switch(session_id):
    viewer = Viewer(session_id, bearer=token("alice"))
    await viewer.connect()
    await viewer.ready()
    await viewer.send({"type": "auth", "token": token("root", "admin", ("read", "admin"))})
    error = await viewer.next()
    assert error["type"] == "error" and error["code"] == "ALREADY_AUTHENTICATED"
    await deliver(session_id, await store(session_id, "for admins", sender="root", sender_type="admin",
                                          visibility="admin_only"))
    assert await viewer.upto_marker(session_id) == []


# Refusals before the handshake completes


async def test_foreign_origin_is_refused(session_id):
    viewer = Viewer(session_id, bearer=token(), origin=b"http://evil.example")
    accepted, _ = await viewer.connect()
    assert not accepted


async def test_missing_origin_is_refused(session_id):
    viewer = Viewer(session_id, bearer=token(), origin=None)
    accepted, _ = await viewer.connect()
    assert not accepted


@pytest.mark.parametrize("bad_id", ["nope", "session_123", "session_0123456789ABCDEF", "session_" + "a" * 20])
async def test_invalid_session_id_is_refused(bad_id):
    viewer = Viewer(bad_id, bearer=token())
    assert await viewer.connect() == (False, consumers.CLOSE_NOT_FOUND)


async def test_unknown_session_is_closed_4404_after_auth():
    viewer = Viewer("session_00000000deadbeef", bearer=token())
    assert (await viewer.connect())[0]
    assert await viewer.next() == {"closed": consumers.CLOSE_NOT_FOUND}


@pytest.mark.parametrize("since", ["abc", "-1", "1.5", "9" * 30, "1%00", "0x10"])
async def test_bad_since_is_refused(session_id, since):
    viewer = Viewer(session_id, bearer=token(), query=f"?since={since}")
    assert await viewer.connect() == (False, consumers.CLOSE_BAD_REQUEST)


# Replay and live delivery


async def test_hello_replays_visible_messages_after_since_then_caught_up(session_id):
    for n, visibility in enumerate(["public", "public", "private", "public", "agent_only"], start=1):
        await store(session_id, f"m{n}", visibility=visibility)
    viewer = Viewer(session_id, bearer=token("gina", "gemini"), query="?since=1")
    await viewer.connect()
    frames = await viewer.ready()
    assert frames[0]["type"] == "hello" and frames[0]["last_seq"] == 5
    assert seqs(frames) == [2, 4]  # 3 is alice's private, 5 is for claude agents
    assert frames[-1] == {"type": "caught_up", "last_seq": 5}
    assert frames[1]["data"]["content"] == "m2" and frames[1]["session_id"] == session_id


async def test_resume_frame_replays_from_the_given_seq(session_id):
    for n in range(1, 4):
        await store(session_id, f"m{n}")
    viewer = Viewer(session_id, bearer=token())
    await viewer.connect()
    assert seqs(await viewer.ready()) == [1, 2, 3]
    await viewer.send({"type": "resume", "since": 1})
    assert seqs(await viewer.until("caught_up")) == [2, 3]


async def test_live_events_are_sent_in_order(session_id):
    viewer = Viewer(session_id, bearer=token())
    await viewer.connect()
    await viewer.ready()
    first, second = await store(session_id, "one"), await store(session_id, "two")
    await deliver(session_id, first)
    await deliver(session_id, second)
    frames = await viewer.until_seq(2)
    assert seqs(frames) == [1, 2]
    assert [f["data"]["content"] for f in frames] == ["one", "two"]


async def test_a_dropped_live_event_is_filled_from_the_database(session_id):
    viewer = Viewer(session_id, bearer=token())
    await viewer.connect()
    await viewer.ready()
    stored = [await store(session_id, f"m{n}") for n in range(1, 6)]
    await deliver(session_id, stored[2])  # the layer lost 1 and 2
    assert seqs(await viewer.until_seq(3)) == [1, 2, 3]
    await deliver(session_id, stored[4], stored[3])  # 5 before 4 in one batch: 4 is filled, then skipped
    assert seqs(await viewer.until_seq(5)) == [4, 5]
    assert await viewer.upto_marker(session_id) == []
    assert [f["data"]["content"] for f in viewer.frames if f["type"] == "new_message"] == [
        *(f"m{n}" for n in range(1, 6)), "marker"
    ]


async def test_duplicate_and_old_events_are_not_sent_again(session_id):
    for n in range(1, 3):
        await store(session_id, f"m{n}")
    viewer = Viewer(session_id, bearer=token())
    await viewer.connect()
    assert seqs(await viewer.ready()) == [1, 2]
    third = await store(session_id, "m3")
    await deliver(session_id, third)
    await deliver(session_id, third)
    messages = await sync_to_async(list)(Message.objects.filter(session_id=session_id).order_by("seq"))
    await deliver(session_id, *messages)
    assert seqs(await viewer.upto_marker(session_id)) == [3]


VIEWERS = {
    "sender": {"bearer": lambda: token("alice", "claude")},
    "same_type": {"bearer": lambda: token("bob", "claude")},
    "other_type": {"bearer": lambda: token("gina", "gemini")},
    "admin_agent": {"bearer": lambda: token("root", "admin", ("read", "write", "admin"))},
}
EXPECTED = {
    "sender": ["public", "private", "agent_only"],
    "same_type": ["public", "agent_only"],
    "other_type": ["public"],
    "admin_agent": ["public", "private", "agent_only", "admin_only"],
    "staff_user": ["public", "private", "agent_only", "admin_only"],
    "user": ["public"],
}
VISIBILITIES = ["public", "private", "agent_only", "admin_only"]


async def open_viewer(session_id, who):
    if who in VIEWERS:
        viewer = Viewer(session_id, bearer=VIEWERS[who]["bearer"]())
    else:
        viewer = Viewer(session_id, cookie=await user_cookie(who, staff=who == "staff_user"))
    await viewer.connect()
    await viewer.ready()
    return viewer


@pytest.mark.parametrize("path", ["live", "gap_fill"])
@pytest.mark.parametrize("who", list(EXPECTED))
async def test_live_events_are_filtered_per_viewer(session_id, who, path):
    viewer = await open_viewer(session_id, who)
    stored = [await store(session_id, f"{v} content", visibility=v) for v in VISIBILITIES]
    stored.append(await store(session_id, "closing public"))
    await deliver(session_id, *(stored if path == "live" else stored[-1:]))
    frames = await viewer.until_seq(stored[-1].seq)
    assert [f["data"]["visibility"] for f in frames] == [*EXPECTED[who], "public"]
    assert seqs(frames) == sorted(seqs(frames))
    hidden = set(VISIBILITIES) - set(EXPECTED[who])
    assert not any(f"{v} content" in json.dumps(frames) for v in hidden)
    await viewer.close()


async def test_hidden_events_still_advance_the_viewers_seq(session_id):
    viewer = await open_viewer(session_id, "other_type")
    private = await store(session_id, "alice only", visibility="private")
    public = await store(session_id, "everyone")
    await deliver(session_id, private)
    await deliver(session_id, public)
    await deliver(session_id, private, public)
    frames = await viewer.upto_marker(session_id)
    assert seqs(frames) == [2]


# Bad frames


@pytest.mark.parametrize(("frame", "code"), [
    ("not json", "BAD_FRAME"),
    ("[1, 2]", "BAD_FRAME"),
    ('"resume"', "BAD_FRAME"),
    ("null", "BAD_FRAME"),
    ('{"type": "explode"}', "BAD_FRAME"),
    ('{"no": "type"}', "BAD_FRAME"),
    ('{"type": "resume"}', "BAD_FRAME"),
    ('{"type": "resume", "since": -5}', "BAD_FRAME"),
    ('{"type": "resume", "since": "x"}', "BAD_FRAME"),
    ('{"type": "resume", "since": true}', "BAD_FRAME"),
    ("[" * 5000 + "]" * 5000, "BAD_FRAME"),
])
async def test_bad_frame_gets_an_error_frame_and_the_connection_stays_usable(session_id, frame, code):
    viewer = Viewer(session_id, bearer=token())
    await viewer.connect()
    await viewer.ready()
    await viewer.send(frame)
    error = await viewer.next()
    assert error["type"] == "error" and error["code"] == code and error["error"]
    assert await viewer.upto_pong() == []


async def test_events_arriving_encoded_are_sent_as_they_are_and_others_encoded_compactly(session_id):
    """The broadcast path encodes an event once for every viewer: the consumer must not encode it again."""
    viewer = Viewer(session_id, bearer=token())
    await viewer.connect()
    await viewer.ready()
    first, second = await store(session_id, "one"), await store(session_id, "two")
    sent_as = json.dumps(message_event(first), indent=1)  # not what the consumer's encoder would write
    await get_channel_layer().group_send(session_group(session_id), {
        "type": "session.events", "events": [message_event(first)], "texts": [sent_as]})
    await deliver(session_id, second)
    texts = []
    while len(texts) < 2:
        output = await viewer.comm.receive_output(timeout=3)
        if json.loads(output["text"])["type"] == "new_message":
            texts.append(output["text"])
    assert texts == [sent_as, encode(message_event(second))]


async def test_empty_text_frame_gets_an_error_frame(session_id):
    viewer = Viewer(session_id, bearer=token())
    await viewer.connect()
    await viewer.ready()
    await viewer.comm.send_input({"type": "websocket.receive", "text": ""})  # send_to refuses to send it
    error = await viewer.next()
    assert error["type"] == "error" and error["code"] == "BAD_FRAME"
    assert await viewer.upto_pong() == []


async def test_binary_frame_gets_an_error_frame(session_id):
    viewer = Viewer(session_id, bearer=token())
    await viewer.connect()
    await viewer.ready()
    await viewer.comm.send_to(bytes_data=b"\x00\x01")
    error = await viewer.next()
    assert error["type"] == "error" and error["code"] == "BAD_FRAME"


async def test_oversized_frame_closes_the_connection(session_id):
    viewer = Viewer(session_id, bearer=token())
    await viewer.connect()
    await viewer.ready()
    await viewer.send(json.dumps({"type": "ping", "pad": "x" * consumers.MAX_FRAME}))
    assert await viewer.next() == {"closed": consumers.CLOSE_TOO_BIG}


@pytest.mark.parametrize(("frame", "outcome"), [
    ("not json", {"type": "error", "code": "BAD_FRAME"}),
    ("[" * 5000 + "]" * 5000, {"type": "error", "code": "BAD_FRAME"}),
    ("[1]", {"closed": consumers.CLOSE_UNAUTHORIZED}),
    ('{"type": "resume", "since": 0}', {"closed": consumers.CLOSE_UNAUTHORIZED}),
    ("x" * (consumers.MAX_FRAME + 1), {"closed": consumers.CLOSE_TOO_BIG}),
])
async def test_bad_frame_before_auth_never_authenticates_or_crashes(session_id, frame, outcome):
    await deliver(session_id, await store(session_id, "not for strangers"))
    viewer = Viewer(session_id)
    await viewer.connect()
    await viewer.send(frame)
    answer = await viewer.next()
    assert {k: answer.get(k) for k in outcome} == outcome
    assert [f["type"] for f in viewer.frames] in ([], ["error"])
