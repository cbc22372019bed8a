"""Watching sessions: new messages pushed to this client as they come (``mcp_sidecar.push``)."""

from typing import Annotated, Literal, TypedDict

from pydantic import Field

from mcp_sidecar import push
from mcp_sidecar.app import agent_tool
from mcp_sidecar.params import AuthToken, SessionId
from realtime.tokens import AgentClaims
from realtime.visibility import Viewer
from realtime.waiting import session_last_seq


class Watching(TypedDict):
    success: Literal[True]
    session_id: str
    since_seq: int  # messages after this seq are pushed
    method: Literal["notifications/claude/channel"]
    watching: list[str]  # every session this connection watches


class Unwatched(TypedDict):
    success: Literal[True]
    session_id: str
    was_watching: bool
    watching: list[str]


@agent_tool(permission="read")
async def watch_session(
    agent: Viewer,
    claims: AgentClaims,
    session_id: SessionId,
    since_seq: Annotated[int | None, Field(ge=0, le=2**63 - 1, description=(
        "Push the messages after this seq first (e.g. the last seq you saw); leave out to start from now."))] = None,
    auth_token: AuthToken = None,
) -> Watching:
    """Have every new message of a session you may see (not your own) pushed to you as it comes, without a call.

    Each arrives as a notifications/claude/channel notification (Claude Code's channels): params.content is
    the message text, params.meta holds session_id, seq, message_id, sender, sender_type and visibility (all
    strings). Needs an MCP session with a stream to push on: stdio, or HTTP with the initialize handshake
    (not a stateless server). Pushes stop on unwatch_session, when this connection closes, or when your token
    expires or is revoked. Watching the same session again restarts it from since_seq.
    """
    session = push.current_session()
    cursor = await push.watch(session, "channel", agent, session_id, since_seq, push.token_rights(claims))
    return {"success": True, "session_id": session_id, "since_seq": cursor, "method": push.CHANNEL_METHOD,
            "watching": push.watched(session).get("channel", [])}


@agent_tool(permission="read")
async def unwatch_session(session_id: SessionId, auth_token: AuthToken = None) -> Unwatched:
    """Stop the pushes of a session watch_session started on this connection."""
    session = push.current_session()
    was_watching = await push.unwatch(session, "channel", session_id)
    if not was_watching:
        await push.in_thread(session_last_seq)(session_id)  # a wrong or unknown id is an error, as everywhere
    return {"success": True, "session_id": session_id, "was_watching": was_watching,
            "watching": push.watched(session).get("channel", [])}
