"""The WebSocket a viewer watches one session through.

Protocol (``ws://…/ws/<session_id>/?since=<seq>``):

1. The viewer is a signed-in Django user, or an agent presenting its token as
   ``Authorization: Bearer`` on the handshake (checked by ``realtime.live.auth``) or
   as a first frame ``{"type": "auth", "token": "…"}``. Anyone else is closed with 4401. A viewer
   with ``SCS_MAX_CONNECTIONS_PER_VIEWER`` connections open already gets an
   ``error`` frame (``TOO_MANY_CONNECTIONS``) and is closed with 4409.
2. The server sends ``hello`` (session, last seq, viewer), replays every message
   after ``since`` the viewer may see, in order, then ``caught_up``. The replay
   reads ahead only as far as the socket drains.
3. Live ``new_message`` events follow (for a signed-in user, each with its ``html``:
   ``realtime.fragments.page_event``; an agent gets the envelope alone). A staff user also
   gets ``memory`` frames for the session's memory entries (``realtime.live.memory``).
   The consumer remembers the last seq it handled; a live event that jumps past it is
   preceded by the missing messages, read from the database. Nothing is sent twice or
   out of order. When staff close, reopen or rename the session, a ``session_state`` frame
   says so (``{"type": "session_state", "session_id", "data": {"is_active", "purpose"}}``).

Client frames are JSON objects of at most ``MAX_FRAME`` characters: ``auth``, ``resume``
(``{"since": N}``), ``ping``, ``who`` (answered with a ``presence`` frame; see
``realtime.live.presence``). Anything else gets a ``BAD_FRAME`` error; a frame too long
is closed with 4413. A client sending more than
``SCS_WS_FRAME_RATE`` frames a second (beyond a burst of ``SCS_WS_FRAME_BURST``)
gets a ``RATE_LIMITED`` error and is closed with 4429.

Rights follow the account (``realtime.live.access``, ``realtime.live.revocation``): a
connection whose user or token changed is closed within a second. Close codes:
``realtime.live.closecodes``.
"""

import asyncio
import contextlib
import functools
import logging
import time
from urllib.parse import parse_qs

from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.layers import get_channel_layer

from realtime import conf, tokens
from realtime.envelope import encode
from realtime.fragments import page_event
from realtime.live import access, delivery
from realtime.live.auth import handshake_agent, read_claims
from realtime.live.closecodes import (
    CLOSE_BAD_REQUEST,
    CLOSE_NOT_FOUND,
    CLOSE_RATE_LIMITED,
    CLOSE_RECHECK,
    CLOSE_TOO_BIG,
    CLOSE_TOO_MANY,
    CLOSE_UNAUTHORIZED,
)
from realtime.live.daphne_limits import SEND_TEXT, UNSENT_BYTES
from realtime.live.dashboard import DASHBOARD_GROUP, state_frame, summary_frame
from realtime.live.dispatching import LayerEventsDirectly, dispatch_in_turn
from realtime.live.groups import session_group, user_group
from realtime.live.memory import joins_memory, memory_group
from realtime.live.presence import PresenceMixin
from realtime.live.replay import ReplayMixin
from realtime.models import Session, is_session_id
from realtime.publisher import start_in_daphne
from realtime.ratelimit import TokenBucket
from realtime.visibility import Viewer, can_see_message

logger = logging.getLogger(__name__)

AUTH_TIMEOUT = 10  # seconds an unauthenticated connection may wait to send its auth frame
MAX_FRAME = 16_384  # characters in one client frame


def parse_since(value):
    """A non-negative seq from a query string or frame; None when malformed."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 18:
        value = int(value)
    if isinstance(value, int) and 0 <= value < 2**63:
        return value
    return None


class LiveConsumer(LayerEventsDirectly, AsyncJsonWebsocketConsumer):
    """A consumer fed by the channel layer at fan-out rates, following its user's account.

    Frames are JSON both ways, decoded in ``receive`` and encoded in ``encode_json``;
    events the channel layer brings already encoded go out as they are (``send_text``).

    Channels closes stale database connections (a hop to the sync thread) before
    every handler. Channel-layer events rarely touch the database, so that is done
    only for the client's own events: connect, frames, disconnect. Measured with
    ``python -m bench dispatch`` (1,000 viewers in one process, 5 events a round, on a
    busy 2-core machine): 0.53 CPU s per 1,000 delivered frames with the hop, 0.22
    without, and a round delivered in 6.3 s rather than 2.2 s.
    """

    async def __call__(self, scope, receive, send):
        """Channels' ``AsyncConsumer.__call__`` with ``realtime.live.dispatching``'s loop (no task per message)."""
        self.scope = scope
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        sources = [receive]
        if self.channel_layer is not None:
            self.channel_name = await self.channel_layer.new_channel()
            self.channel_receive = functools.partial(self.channel_layer.receive, self.channel_name)
            sources.append(self.channel_receive)
        self.base_send = send
        with contextlib.suppress(StopConsumer):
            await dispatch_in_turn(sources, self.dispatch)

    user_group = None
    revoked = False  # rights changed: nothing more is sent, the connection is closing

    def revoke(self, code):
        """Stop sending at once and close (called by realtime.live.access when the owner's rights changed)."""
        if not self.revoked:
            self.revoked = True
            asyncio.ensure_future(self.close(code=code))

    async def user_viewer(self):
        """The signed-in user's viewer, built from a fresh read once ``realtime.live.access`` watches it; else None."""
        user = await access.authenticate_user(self)
        return Viewer.for_user(user) if user is not None else None

    async def follow_user(self):
        """Signed-in users: join ``user.<pk>`` so account changes reach this connection."""
        user = self.scope.get("user")
        if self.viewer is not None and self.viewer.kind == "user" and user is not None and user.pk is not None:
            self.user_group = user_group(user.pk)
            await self.channel_layer.group_add(self.user_group, self.channel_name)

    async def unfollow_user(self):
        if self.user_group is not None:
            await self.channel_layer.group_discard(self.user_group, self.channel_name)

    async def viewer_recheck(self, message):
        """The account signed out or changed: reconnect and be authenticated afresh (realtime.live.revocation)."""
        access.forget(self)
        self.revoke(CLOSE_RECHECK)

    # Frames

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        """A client frame: JSON text of at most MAX_FRAME characters, decoded for ``receive_json``."""
        if text_data is None:
            await self.bad_frame("frames must be JSON text")
            return
        if len(text_data) > MAX_FRAME:
            await self.bad_frame(f"frames must be at most {MAX_FRAME} characters", close_code=CLOSE_TOO_BIG)
            return
        try:
            content = await self.decode_json(text_data)
        except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser allows
            await self.bad_frame("frame is not valid JSON")
            return
        await self.receive_json(content, **kwargs)

    async def bad_frame(self, message, close_code=None):
        """A frame ``receive`` cannot decode; ignored unless a consumer says otherwise."""

    @classmethod
    async def encode_json(cls, content):
        return encode(content)  # compact: the same text the broadcast path encodes once per event

    async def send_json(self, content, close=False):
        await self.send_text(await self.encode_json(content), close=close)

    async def send_text(self, text, close=False):
        """Send an encoded frame; nothing once the owner's rights changed."""
        if self.revoked:
            return
        send_now = self.scope.get(SEND_TEXT)  # under Daphne: straight to the socket (realtime.live.daphne_limits)
        if send_now is None or close or not send_now(text):
            await self.send(text_data=text, close=close)
        # Let the server write out what the socket did not take before the next frame: a long replay or
        # batch then never piles up unsent in memory for a client that reads (see SCS_WS_MAX_BUFFER).
        unsent = self.scope.get(UNSENT_BYTES)
        if unsent is None or unsent() != 0:
            await asyncio.sleep(0)


class SessionConsumer(PresenceMixin, ReplayMixin, LiveConsumer):
    viewer = None
    last_seq = 0
    joined = False
    auth_timer = None
    viewer_expires = None  # Unix time an agent's token expires; the connection closes then
    expiry_timer = None
    frame_budget = None
    rate_limited = False

    async def connect(self):
        start_in_daphne()  # this process's publisher and sweeper, on Daphne's loop (realtime.publisher)
        handshake_agent(self.scope)  # fails clearly where the routes are not wrapped in TokenAuthMiddleware
        self.session_id = self.scope["url_route"]["kwargs"]["session_id"]
        if not is_session_id(self.session_id):
            await self.close(code=CLOSE_NOT_FOUND)
            return
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        self.since = parse_since(query.get("since", ["0"])[-1])
        if self.since is None:
            await self.close(code=CLOSE_BAD_REQUEST)
            return
        await self.accept()
        self.viewer = await self.viewer_from_scope()
        if self.viewer is None and handshake_agent(self.scope) != (None, None):
            await self.close(code=CLOSE_UNAUTHORIZED)  # a token presented on the handshake that fails is final
            return
        if self.viewer is None:
            self.auth_timer = asyncio.get_running_loop().call_later(
                AUTH_TIMEOUT, lambda: asyncio.ensure_future(self.close(code=CLOSE_UNAUTHORIZED))
            )
            return
        await self.start()

    async def viewer_from_scope(self):
        """The agent whose token the handshake presented (``realtime.live.auth``), else the signed-in user."""
        claims, error = handshake_agent(self.scope)
        if claims is None and error is None:
            return await self.user_viewer()
        return await self.agent_viewer(claims) if claims is not None else None

    async def agent_viewer(self, claims):
        """The viewer for a token still good now (checked once ``realtime.live.access`` watches it); else None."""
        if not await access.authenticate_agent(self, claims):
            return None
        self.viewer_expires = claims.expires_at
        return Viewer.for_agent(claims.agent_id, claims.agent_type, claims.permissions)

    async def start(self):
        """Take a connection slot, join the session's group, greet, replay what the viewer missed."""
        if not await self.presence_claim():
            cap = conf.get("SCS_MAX_CONNECTIONS_PER_VIEWER")
            await self.send_error("TOO_MANY_CONNECTIONS",
                                  f"{self.viewer.id} already has {cap} connections open; close one and retry")
            await self.close(code=CLOSE_TOO_MANY)
            return
        if self.viewer_expires is not None:  # an agent watches no longer than its token is valid
            self.expiry_timer = asyncio.get_running_loop().call_later(
                max(0.0, self.viewer_expires - time.time()),
                lambda: asyncio.ensure_future(self.close(code=CLOSE_UNAUTHORIZED)),
            )
        await self.channel_layer.group_add(session_group(self.session_id), self.channel_name)
        self.joined = True
        if self.viewer.kind == "user":
            delivery.page_joined(self.session_id)
        if joins_memory(self.viewer):
            await self.channel_layer.group_add(memory_group(self.session_id), self.channel_name)
        await self.follow_user()
        # Read last_seq after joining: anything newer arrives live or is filled by seq.
        last_seq = await Session.objects.filter(pk=self.session_id).values_list("last_seq", flat=True).afirst()
        if last_seq is None:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        await self.send_json(
            {"type": "hello", "session_id": self.session_id, "last_seq": last_seq, "viewer": self.viewer.describe()}
        )
        self.last_seq = last_seq
        await self.replay(self.since, last_seq)
        await self.presence_start()

    async def disconnect(self, code):
        self.revoked = True  # a replay waiting for the socket to drain stops
        access.forget(self)
        for timer in (self.auth_timer, self.expiry_timer):
            if timer is not None:
                timer.cancel()
        if self.joined and self.viewer.kind == "user":
            delivery.page_left(self.session_id)  # first: nothing below can keep it counted
        await self.unfollow_user()
        await self.presence_stop()
        if self.joined:
            await self.channel_layer.group_discard(session_group(self.session_id), self.channel_name)
            if joins_memory(self.viewer):
                await self.channel_layer.group_discard(memory_group(self.session_id), self.channel_name)

    # Client frames

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        if await self.within_frame_rate():
            await super().receive(text_data, bytes_data, **kwargs)

    async def bad_frame(self, message, close_code=None):
        if close_code is None:
            await self.send_error("BAD_FRAME", message)
        else:
            await self.close(code=close_code)

    async def receive_json(self, frame, **kwargs):
        kind = frame.get("type") if isinstance(frame, dict) else None
        if self.viewer is None:
            await self.receive_auth(frame if kind == "auth" else {})
        elif kind == "resume":
            await self.receive_resume(frame)
        elif kind == "who":
            await self.send_presence()
        elif kind == "ping":
            await self.send_json({"type": "pong"})
        elif kind == "auth":
            await self.send_error("ALREADY_AUTHENTICATED", "this connection is already authenticated")
        else:
            await self.send_error("BAD_FRAME", "frame type must be one of: resume, ping, who")

    async def within_frame_rate(self):
        """Spend one frame of this connection's budget; over it, say why and close with 4429."""
        if self.frame_budget is None:
            self.frame_budget = TokenBucket(conf.get("SCS_WS_FRAME_RATE"), conf.get("SCS_WS_FRAME_BURST"))
        if self.rate_limited:
            return False
        if self.frame_budget.take():
            return True
        self.rate_limited = True
        await self.send_error("RATE_LIMITED", f"more than {conf.get('SCS_WS_FRAME_RATE')} frames per second")
        await self.close(code=CLOSE_RATE_LIMITED)
        return False

    async def receive_auth(self, frame):
        try:
            claims = read_claims(frame.get("token"))
        except tokens.TokenError:
            claims = None
        self.viewer = await self.agent_viewer(claims) if claims is not None else None
        if self.viewer is None:
            await self.close(code=CLOSE_UNAUTHORIZED)
            return
        if self.auth_timer is not None:
            self.auth_timer.cancel()
            self.auth_timer = None
        await self.start()

    async def receive_resume(self, frame):
        since = parse_since(frame.get("since"))
        if since is None:
            await self.send_error("BAD_FRAME", "resume needs 'since', a non-negative integer seq")
            return
        if not await access.still_allowed(self):  # exact, not up to one check interval late
            access.forget(self)
            self.revoke(CLOSE_RECHECK if self.viewer.kind == "user" else CLOSE_UNAUTHORIZED)
            return
        await self.replay(since, self.last_seq)

    # Channel layer events

    async def session_events(self, message):
        """Live events from the broadcast view, one session, in any order."""
        events = message["events"]
        # Encoded (and rendered, for pages) once per event by realtime.live.delivery, not per viewer; rendered
        # here when delivery knew no page of this process watched.
        texts = message.get("page_texts" if self.viewer.kind == "user" else "texts") or [None] * len(events)
        for event, text in zip(events, texts, strict=True):
            seq = event["seq"]
            if seq <= self.last_seq:
                continue  # already delivered or filled from the database
            if seq > self.last_seq + 1:
                await self.replay(self.last_seq, seq - 1, announce=False)
            if can_see_message(self.viewer, event["data"]):
                await self.send_text(text or await self.encode_json(self.frame_of(event)))
            self.last_seq = seq

    async def session_state(self, message):
        """The session was closed, reopened or renamed: a ``session_state`` frame, encoded once by delivery."""
        await self.send_text(message["text"])

    def frame_of(self, event):
        """A message event as this viewer receives it: pages also get its ``html``."""
        return page_event(event) if self.viewer.kind == "user" else event

    async def memory_events(self, message):
        """The session's memory entries set or deleted: staff users only (``realtime.live.memory``)."""
        if joins_memory(self.viewer):
            for text in message["texts"]:
                await self.send_text(text)

    async def send_error(self, code, message):
        await self.send_json({"type": "error", "code": code, "error": message})


class DashboardConsumer(LiveConsumer):
    """``/ws/dashboard/``: a ``session_summary`` frame whenever a session gets messages, a ``session_state``
    frame (``session_id``, ``is_active``, ``purpose``) whenever staff close, reopen or rename one.

    Signed-in users only; each frame is filtered for its viewer (``realtime.live.dashboard``).
    """

    viewer = None

    async def connect(self):
        self.viewer = await self.user_viewer()
        if self.viewer is None:
            await self.close(code=CLOSE_UNAUTHORIZED)
            return
        await self.channel_layer.group_add(DASHBOARD_GROUP, self.channel_name)
        await self.follow_user()
        await self.accept()
        await self.send_json({"type": "hello", "viewer": self.viewer.describe()})

    async def disconnect(self, code):
        access.forget(self)
        if self.viewer is not None:
            await self.channel_layer.group_discard(DASHBOARD_GROUP, self.channel_name)
            await self.unfollow_user()

    async def receive_json(self, frame, **kwargs):
        """The only client frame is ``ping``; anything else is ignored."""
        if isinstance(frame, dict) and frame.get("type") == "ping":
            await self.send_json({"type": "pong"})

    async def dashboard_state(self, message):
        await self.send_json(state_frame(message))

    async def dashboard_summary(self, message):
        frame = summary_frame(self.viewer, message)
        if frame is not None:  # None: nothing in the batch this viewer may see
            await self.send_json(frame)
