"""Waiting for messages: ``wait_for_messages`` blocks on this process's wake hub, not on the database.

The call registers a waiter (``realtime.wake``), reads the session once after its cursor and, when
there is nothing to show, sleeps until the hub hands it an event of the session or the timeout
passes (``realtime.waiting.Follower``). A client that cancels the call (``notifications/cancelled``:
the MCP SDK cancels the handler) or drops its HTTP connection ends the wait at once and frees its
waiter. The SDK ends a handler whose client disconnected only when it answers with an event stream;
the sidecar answers each call with one JSON body, on either protocol, so the handler would run on to
its timeout: the tool watches the connection itself (``ended_by_disconnect``).
"""

import asyncio
import contextlib
import logging
from typing import Annotated, Literal, TypedDict

import anyio
from fastmcp.server.dependencies import get_http_request
from pydantic import Field

from mcp_sidecar.app import agent_tool
from mcp_sidecar.params import AuthToken, SessionId
from mcp_sidecar.results import MessageRecord
from realtime import conf, read_cursors, wake
from realtime.tokens import AgentClaims
from realtime.visibility import Viewer
from realtime.waiting import Follower

logger = logging.getLogger(__name__)


class MessagesWaited(TypedDict):
    success: Literal[True]
    messages: list[MessageRecord]
    last_seq: int
    timed_out: bool


def current_request():
    """The HTTP request this call came in (None on stdio)."""
    try:
        return get_http_request()
    except RuntimeError:
        return None


async def until_disconnected(request, scope):
    """Cancel ``scope`` once the client of ``request`` has gone (its connection closed)."""
    # The request body was read before the tool ran: by the ASGI spec the next message is the disconnect.
    try:
        while (await request.receive())["type"] != "http.disconnect":
            pass
    except Exception:  # noqa: BLE001 - the server cannot tell: the wait ends by itself at its timeout
        logger.debug("cannot watch the connection of a waiting call", exc_info=True)
        return
    scope.cancel()


@contextlib.asynccontextmanager
async def ended_by_disconnect():
    """A cancel scope that ends when this call's HTTP client disconnects (stdio clients end with their process)."""
    request = current_request()
    with anyio.CancelScope() as scope:
        watcher = asyncio.ensure_future(until_disconnected(request, scope)) if request is not None else None
        try:
            yield scope
        finally:
            if watcher is not None:
                watcher.cancel()


@agent_tool(permission="read")
async def wait_for_messages(
    agent: Viewer,
    session_id: SessionId,
    since_seq: Annotated[int, Field(ge=0, le=2**63 - 1, description=(
        "Your cursor: the last_seq of your previous call (0 for the start of the session)."))] = 0,
    timeout: Annotated[float, Field(ge=0, le=conf.get("SCS_WAIT_MAX_TIMEOUT"), description=(  # noqa: ASYNC109
        "Seconds to wait when there is nothing new (0: only look)."))] = 30,
    limit: Annotated[int, Field(ge=1, le=1000, description="How many messages at most.")] = 50,
    include_own: Annotated[bool, Field(description="Also return your own messages.")] = False,
    mark_read: Annotated[bool, Field(description=(
        "Move your read cursor to the last_seq returned (it never moves back; see mark_read)."))] = False,
    auth_token: AuthToken = None,
    claims: AgentClaims = None,
) -> MessagesWaited:
    """Messages of a session after since_seq that you may see; waits for the next one when there are none yet.

    Returns at once when there are such messages (oldest first, at most limit, within the read budget);
    otherwise blocks until one is stored, by anyone, or until timeout seconds have passed (timed_out:
    true). Pass last_seq as since_seq to the next call: it moves past the messages returned and those you
    may not see or wrote yourself (unless include_own), so nothing is missed or returned twice. The wait
    ends with TOKEN_REVOKED or TOKEN_EXPIRED within a second of your token stopping being good.
    """
    with wake.hub.session(session_id, claims) as waiter:
        # Its first read checks the session and the cursor (SESSION_NOT_FOUND, INVALID_ARGUMENT past the newest).
        follower = Follower(agent, session_id, since_seq, waiter, include_own=include_own, limit=limit)
        async with ended_by_disconnect():
            batch = await follower.next(timeout)
            if mark_read and batch.last_seq > since_seq:
                await read_cursors.mark_async(agent.id, session_id, batch.last_seq)
            return {"success": True, "messages": batch.records, "last_seq": batch.last_seq,
                    "timed_out": batch.timed_out}
    return {"success": True, "messages": [], "last_seq": since_seq, "timed_out": True}  # the client left: unread
