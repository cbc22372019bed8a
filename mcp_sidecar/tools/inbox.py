"""Reading state tools: the inbox of mentions across sessions, and read cursors."""

from typing import Annotated, Literal, TypedDict

from channels.db import DatabaseSyncToAsync
from pydantic import Field

from mcp_sidecar.app import agent_tool
from mcp_sidecar.auth import refusal_error
from mcp_sidecar.params import AuthToken, SessionId
from mcp_sidecar.results import MessageRecord
from realtime import conf, credentials, inbox, read_cursors
from realtime.tokens import AgentClaims
from realtime.visibility import Viewer


class InboxMessage(MessageRecord):
    session_id: str


class InboxPage(TypedDict):
    success: Literal[True]
    messages: list[InboxMessage]
    count: int
    has_more: bool
    cursor: int
    timed_out: bool


class MarkedRead(TypedDict):
    success: Literal[True]
    session_id: str
    read_seq: int


@agent_tool(permission="read")
async def get_inbox(
    agent: Viewer,
    claims: AgentClaims,
    since: Annotated[int | None, Field(ge=0, le=2**63 - 1, description=(
        "The cursor the previous get_inbox returned: only mentions after it. Leave it out for the mentions "
        "in messages you have not marked read."))] = None,
    wait: Annotated[float, Field(ge=0, le=conf.get("SCS_WAIT_MAX_TIMEOUT"), description=(
        "Seconds to wait for a mention when there is none yet (0: answer at once)."))] = 0,
    limit: Annotated[int, Field(ge=1, le=200, description="How many messages at most.")] = 50,
    auth_token: AuthToken = None,
) -> InboxPage:
    """Messages that mention you (@your_agent_id in the text, or your id in metadata["mentions"]), across
    sessions, oldest first, each with its session_id and seq.

    Only messages you may see; never your own. Pass the returned cursor as since next time;
    with wait > 0 the call blocks until a mention arrives (timed_out: true if none did).
    """
    page = await inbox.wait(agent, since, wait, limit, claims)
    if wait and page.records:
        # Rights checked again after a wait: a token revoked meanwhile gets no message.
        refusal = await DatabaseSyncToAsync(credentials.token_refusal, thread_sensitive=False)(claims)
        if refusal:
            raise refusal_error(refusal)
    return {"success": True, "messages": page.records, "count": len(page.records), "has_more": page.has_more,
            "cursor": page.cursor, "timed_out": page.timed_out}


@agent_tool(permission="read")
def mark_read(
    agent: Viewer,
    session_id: SessionId,
    seq: Annotated[int, Field(ge=0, le=2**63 - 1, description=(
        "Everything up to this seq is read: a message's seq, or the last_seq wait_for_messages returned."))],
    auth_token: AuthToken = None,
) -> MarkedRead:
    """Mark a session read up to seq. Your read cursor only moves forward (an older seq changes nothing).

    It decides what get_messages(unread_only=true), list_sessions' unread counts and get_inbox()
    without since count as unread. Returns your cursor (read_seq).
    """
    return {"success": True, "session_id": session_id, "read_seq": read_cursors.mark(agent.id, session_id, seq)}
