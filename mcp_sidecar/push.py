"""Pushing a session's new messages to an MCP client, without a tool call.

A *watch* follows one session for one MCP session (one client connection): a task
that loops on ``realtime.waiting.Follower`` with the agent's Viewer and sends what
it returns, in seq order and once each, on the connection's standalone stream (the
stdio pipe, or the client's GET stream over stateful HTTP). Two kinds:

- ``channel`` (``watch_session``, ``--watch``): each message as Claude Code's
  ``notifications/claude/channel`` (https://code.claude.com/docs/en/channels-reference):
  ``{"content": <message content>, "meta": {...}}``. Meta keys are identifiers (letters,
  digits, underscores: Claude Code drops other keys) and every value is a string.
  The agent's own messages are not sent.
- ``resource`` (``resources/subscribe`` to ``session://{id}``): one
  ``notifications/resources/updated`` per batch of messages the subscriber may see.

A watch ends on unwatch, when the MCP session ends (the connection's exit stack
cancels its tasks), and when its agent's rights end: before each push the token (or
the stdio agent key) is checked again with ``realtime.credentials``; a token's watch
is also guarded like every wait (``realtime.wait_guard``: refused within a second,
expiry included), and a key's is checked at least every ``RECHECK`` seconds. A channel
watch that ends so sends a last notification saying why (``meta.event: "watch_ended"``).

How, in mcp 2.3.0 under FastMCP 4.2.3: a tool's ``Context.session`` is a per-request
``ServerSession`` over the connection's ``Connection`` (read as ``session._connection``,
as FastMCP's own ``Context.session_id`` does), whose ``notify`` is the library's way to
send an off-spec notification on the standalone stream (mcp/server/connection.py), and
whose ``state`` and ``exit_stack`` live as long as the MCP session. The capability is
``FastMCP(experimental_capabilities=...)`` (mcp_sidecar.app).
"""

import asyncio
import contextvars
import logging
import time
from dataclasses import dataclass

from channels.db import DatabaseSyncToAsync
from fastmcp.server.dependencies import get_context, get_http_request
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from realtime import conf, credentials, wait_guard
from realtime.errors import ErrorCode, OperationError
from realtime.waiting import Follower, check_cursor
from realtime.wake import hub

logger = logging.getLogger(__name__)

CHANNEL_CAPABILITY = "claude/channel"  # capabilities.experimental key that makes Claude Code listen
CHANNEL_METHOD = "notifications/claude/channel"
RECHECK = 10.0  # seconds an idle watch waits before it checks its agent's rights again
_STATE_KEY = "scs.watches"  # in the connection's state: (kind, session id) -> Watch

_running = set()  # every watch task of this process


def in_thread(fn):
    return DatabaseSyncToAsync(fn, thread_sensitive=False)


def connection_of(session):
    """The MCP ``Connection`` behind a ``ServerSession`` (FastMCP reads it the same way: Context.session_id)."""
    return session._connection


def channel_params(session_id, record):
    """A message record as the params of ``notifications/claude/channel``."""
    return {
        "content": record["content"],
        "meta": {
            "session_id": session_id,
            "seq": str(record["seq"]),
            "message_id": str(record["id"]),
            "sender": record["sender"],
            "sender_type": record["sender_type"],
            "visibility": record["visibility"],
        },
    }


async def push_channel(connection, session_id, records):
    for record in records:
        await connection.notify(CHANNEL_METHOD, channel_params(session_id, record))


async def push_resource(connection, session_id, records):
    await connection.send_resource_updated(f"session://{session_id}")


# Why a watch ended and what to do, by code, in the words of its last notification (else the error's own).
ENDED = {
    ErrorCode.TOKEN_EXPIRED: ("the token it was made with expired", "Call refresh_token, then {again}."),
    ErrorCode.TOKEN_REVOKED: ("the token it was made with was revoked or refreshed, or its key was revoked",
                              "Call authenticate_agent for a new token, then {again}."),
}


def ended_params(session_id, cursor, error):
    """The last ``notifications/claude/channel`` of a watch that its agent's rights (or the session) ended."""
    again = f"watch_session(session_id={session_id!r}, since_seq={cursor}) to go on"
    why, what_to_do = ENDED.get(error.code, (error.message, error.hint))
    return {
        "content": f"Pushed messages of {session_id} stopped: {why}. {what_to_do.format(again=again)}".strip(),
        "meta": {"session_id": session_id, "event": "watch_ended", "error_code": str(error.code),
                 "last_seq": str(cursor)},
    }


KINDS = {"channel": (push_channel, False), "resource": (push_resource, True)}  # kind -> (push, include own)


@dataclass(frozen=True)
class Rights:
    """What a watch checks before each push (``refusal()``, in a thread: None, or the OperationError that ends it),
    until when, and the token it is made with (its hub waiter is then guarded: ``realtime.wait_guard`` ends it
    within a second once the token is refused)."""

    refusal: object
    expires_at: float = None
    claims: object = None


def token_rights(claims):
    """A watch made with a token: unexpired, not retired, its key still valid."""
    def refusal():
        if claims.expires_at <= time.time():
            return wait_guard.expired()
        return wait_guard.revoked() if credentials.token_refusal(claims) else None

    return Rights(refusal, claims.expires_at, claims)


def key_rights(key_id):
    """A watch made by an agent key, without a token (``--watch``; a subscription): the key is still active."""
    def refusal():
        if credentials.active().filter(key_id=key_id).exists():
            return None
        return OperationError(ErrorCode.API_KEY_REQUIRED, "the agent key this watch was made with was revoked or "
                              "has expired", "Ask staff for a new agent key.")

    return Rights(refusal)


class Watch:
    """One session followed for one MCP session."""

    def __init__(self, connection, kind, viewer, session_id, cursor, rights):
        self.connection = connection
        self.kind = kind
        self.viewer = viewer
        self.session_id = session_id
        self.cursor = cursor
        self.rights = rights
        self.task = None

    def start(self):
        # A context of its own: the task outlives the request that started it, and must not carry its state.
        self.task = asyncio.get_running_loop().create_task(self.run(), context=contextvars.Context())
        _running.add(self.task)
        self.task.add_done_callback(_running.discard)

    async def end(self):
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    def within(self):
        if self.rights.expires_at is None:
            return RECHECK
        return max(0.0, min(RECHECK, self.rights.expires_at - time.time()))

    async def run(self):
        send, include_own = KINDS[self.kind]
        try:
            with hub.session(self.session_id, self.rights.claims) as waiter:
                follower = Follower(self.viewer, self.session_id, self.cursor, waiter, include_own=include_own)
                while True:
                    batch = await follower.next(self.within())
                    refusal = await in_thread(self.rights.refusal)()
                    if refusal is not None:
                        raise refusal
                    if batch.records:
                        await send(self.connection, self.session_id, batch.records)
                    self.cursor = batch.last_seq
        except OperationError as exc:  # rights ended (checked here, or by the wait guard), or the session is gone
            logger.info("watch of %s by %s ended: %s", self.session_id, self.viewer.id, exc.message)
            if self.kind == "channel":  # tell the agent, or it would not know the pushes stopped
                await self.connection.notify(CHANNEL_METHOD, ended_params(self.session_id, self.cursor, exc))
        except Exception:
            logger.exception("watch of %s by %s failed", self.session_id, self.viewer.id)
        finally:
            watches = self.connection.state.get(_STATE_KEY, {})
            if watches.get((self.kind, self.session_id)) is self:
                del watches[(self.kind, self.session_id)]


def current_session():
    """The ``ServerSession`` of the tool call being served; PUSH_UNAVAILABLE for a call made without one."""
    try:
        return get_context().session
    except RuntimeError:  # e.g. FastMCP.call_tool from the server's own code
        raise OperationError(
            ErrorCode.PUSH_UNAVAILABLE, "this call came without an MCP session: there is no stream to push on",
            "Call it from an MCP client over stdio or stateful HTTP; or read with get_messages(since_seq).",
        ) from None


def refuse_without_stream(connection):
    """PUSH_UNAVAILABLE unless this connection is an MCP session with a standing stream to push on."""
    try:
        get_http_request()
        over_http = True
    except RuntimeError:
        over_http = False
    if over_http and conf.get("SCS_MCP_STATELESS"):
        raise OperationError(
            ErrorCode.PUSH_UNAVAILABLE,
            "this sidecar serves stateless HTTP (SCS_MCP_STATELESS=1): it keeps no MCP session, so it has no "
            "stream to push notifications on",
            "Connect to a sidecar with stateful HTTP (the default) or over stdio; or read with get_messages "
            "(since_seq).",
        )
    modern = connection.protocol_version in MODERN_PROTOCOL_VERSIONS
    if modern or not connection.has_standalone_channel or (over_http and connection.session_id is None):
        raise OperationError(
            ErrorCode.PUSH_UNAVAILABLE,
            f"this client connected without an MCP session (protocol {connection.protocol_version}): there is "
            "no stream to push notifications on",
            "Connect with the initialize handshake (protocol 2025-11-25 or earlier, as Claude Code does; a "
            "fastmcp Client with mode='legacy'); or read with get_messages(since_seq).",
        )


class Watches(dict):
    """One MCP session's watches, (kind, session id) -> Watch; ``closed`` once that session ended."""

    closed = False


async def _stop(watches):
    watches.closed = True
    ending = list(watches.values())
    watches.clear()
    await asyncio.gather(*(watch.end() for watch in ending))


def watches_of(connection):
    """This MCP session's watches; the first call arranges for them to end with it."""
    watches = connection.state.get(_STATE_KEY)
    if watches is None:
        watches = connection.state[_STATE_KEY] = Watches()
        connection.exit_stack.push_async_callback(_stop, watches)
    return watches


async def watch(session, kind, viewer, session_id, since_seq, rights):
    """Follow ``session_id`` for this MCP session from ``since_seq`` (None: from now); returns the cursor.

    Watching a session again replaces its watch (and its cursor).
    """
    connection = connection_of(session)
    refuse_without_stream(connection)
    watches = watches_of(connection)  # before any await: a session ending meanwhile is then seen as closed
    last = await in_thread(check_cursor)(session_id, since_seq or 0)
    cursor = last if since_seq is None else since_seq
    if watches.closed:
        return cursor  # the client is gone: nothing to follow for it
    key = (kind, session_id)
    limit = conf.get("SCS_MAX_WATCHES")
    if key not in watches and len(watches) >= limit:
        raise OperationError(
            ErrorCode.TOO_MANY_WATCHES, f"this connection already watches {limit} sessions (SCS_MAX_WATCHES)",
            "Unwatch one first (unwatch_session), or open another connection.",
        )
    old = watches.pop(key, None)
    new = watches[key] = Watch(connection, kind, viewer, session_id, cursor, rights)  # counted before any await
    if old is not None:
        await old.end()
        if watches.get(key) is not new:  # the MCP session ended (or another call replaced it) meanwhile
            return cursor
    new.start()
    return cursor


async def unwatch(session, kind, session_id):
    """Stop following ``session_id`` for this MCP session (nothing more is pushed for it once this returns);
    False if it was not followed."""
    old = connection_of(session).state.get(_STATE_KEY, {}).pop((kind, session_id), None)
    if old is None:
        return False
    await old.end()
    return True


def watched(session):
    """The session ids this MCP session watches, by kind."""
    found = {}
    for kind, session_id in connection_of(session).state.get(_STATE_KEY, {}):
        found.setdefault(kind, []).append(session_id)
    return found


def stats():
    return {"watches": len(_running)}
