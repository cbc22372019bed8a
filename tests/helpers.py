"""Plain helpers the tests and ``bench/`` share: sessions, waits, sign-in, tokens, in-process viewers.

Against real processes (``tests.stack``): ``new_session``, ``eventually``,
``sign_in``, ``signed_token``. In-process, through the ASGI application:
``agent_token``, ``user_cookie``, ``Viewer`` (Django is imported only when these
are called, so ``bench/`` can import this module before settings exist).
"""

import asyncio
import json
import secrets
import time

import httpx
import jwt

ORIGIN = b"http://127.0.0.1:8081"  # an allowed origin of the in-process application (tests/settings.py)
ISSUER = "shared-context-server"  # realtime.tokens.ISSUER, repeated so that forged tokens stay independent of it


class CallFailed(AssertionError):
    """A tool call that had to succeed answered ``success: false`` (the answer is the message)."""


def succeeded(result):
    """``result`` if it is a successful tool answer; else raise CallFailed with it."""
    if not result or result.get("success") is not True:
        raise CallFailed(result)
    return result


async def new_session(agent, purpose="test"):
    """A new session created by ``agent`` (an Agent of tests.stack); its id."""
    return succeeded(await agent.call("create_session", purpose=purpose))["session_id"]


async def say(agent, session_id, content, **arguments):
    """``add_message``, which must succeed; the answer (``seq``, ``message_id``)."""
    return succeeded(await agent.call("add_message", session_id=session_id, content=content, **arguments))


async def eventually(condition, within=30.0, what="the condition", interval=0.02):
    """Wait until ``condition()`` is true, polling every ``interval`` s; fail after ``within`` s."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"{what} not reached within {within}s"
        await asyncio.sleep(interval)


def until(condition, within=5.0, what="the condition"):
    """``eventually`` for threads: wait until ``condition()`` is true; fail after ``within`` s."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"{what} not reached within {within}s"
        time.sleep(0.001)


def sign_in(base_url, username, password, path="/accounts/login/"):
    """Sign in through a login form over HTTP; the cookies it set (``sessionid``, the new ``csrftoken``)."""
    with httpx.Client(base_url=base_url, timeout=10) as client:
        client.get(path)
        answer = client.post(path, data={
            "username": username, "password": password, "csrfmiddlewaretoken": client.cookies["csrftoken"]})
        assert answer.status_code == 302, (answer.status_code, answer.text[:500])
        return dict(client.cookies)


def signed_token(secret, *, algorithm="HS256", expires_in=3600, **claims):
    """A JWT signed with ``secret`` (None for ``alg: none``); ``claims`` add to or replace the usual ones.

    Written with PyJWT directly, not realtime.tokens, so that tests of the token checks do
    not share the code they test.
    """
    now = int(time.time())
    payload = {"iss": ISSUER, "sub": "mallory", "agent_type": "admin", "permissions": ["read", "write", "admin"],
               "iat": now, "exp": now + expires_in, "jti": secrets.token_hex(8), **claims}
    return jwt.encode(payload, secret, algorithm=algorithm)


# In-process (the ASGI application of the test settings)


def agent_token(agent_id="alice", agent_type="claude", permissions=("read", "write"), **kwargs):
    """A token from ``realtime.tokens.issue`` with the test settings' secret."""
    from realtime import tokens

    return tokens.issue(agent_id, agent_type, list(permissions), **kwargs)[0]


async def signed_in_user(username, staff=False):
    """A new user and a Django test client signed in as them: ``(user, client)``."""
    from asgiref.sync import sync_to_async
    from django.contrib.auth import get_user_model
    from django.test import AsyncClient

    user = await sync_to_async(get_user_model().objects.create_user)(username, password="pw-for-tests",
                                                                     is_staff=staff)
    client = AsyncClient()
    await client.aforce_login(user)
    return user, client


async def user_cookie(username, staff=False):
    """The session cookie value of a new, signed-in user."""
    _, client = await signed_in_user(username, staff)
    return client.cookies["sessionid"].value


class Viewer:
    """One in-process WebSocket connection to a session, with helpers that skip presence frames."""

    def __init__(self, session_id, *, bearer=None, cookie=None, origin=ORIGIN, query=""):
        from channels.testing import WebsocketCommunicator

        from project.asgi import application

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

    async def next(self, timeout=3):
        """The next frame that is not a presence update; ``{"closed": code}`` when the server closed."""
        while True:
            output = await self.comm.receive_output(timeout=timeout)
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

    async def until_closed(self, timeout=3):
        """Frames up to the server's close; the close code."""
        frame = await self.next(timeout)
        while "closed" not in frame:
            frame = await self.next(timeout)
        return frame["closed"]

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

    async def ready(self):
        """Connected and authenticated: the frames from hello to caught_up."""
        return await self.until("caught_up")

    async def close(self):
        await self.comm.disconnect()
