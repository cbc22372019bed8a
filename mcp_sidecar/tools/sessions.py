"""Session tools."""

from typing import Annotated, Literal, TypedDict

from pydantic import Field

from mcp_sidecar.app import agent_tool
from mcp_sidecar.params import AuthToken, Metadata, SessionId
from mcp_sidecar.results import JsonObject, MessageRecord, Timestamp
from realtime import conf, operations, reads
from realtime.envelope import message_record
from realtime.timestamps import isoformat
from realtime.visibility import Viewer

RECENT = 50


class SessionRecord(TypedDict):
    id: str
    purpose: str
    created_by: str
    metadata: JsonObject
    is_active: bool
    created_at: Timestamp
    updated_at: Timestamp
    last_seq: int


class SessionCreated(TypedDict):
    success: Literal[True]
    session_id: str
    created_by: str
    created_at: Timestamp


class SessionDetails(TypedDict):
    success: Literal[True]
    session: SessionRecord
    messages: list[MessageRecord]
    message_count: int
    has_more: bool


def session_record(session) -> SessionRecord:
    return {
        "id": session.id,
        "purpose": session.purpose,
        "created_by": session.created_by,
        "metadata": session.metadata,
        "is_active": session.is_active,
        "created_at": isoformat(session.created_at),
        "updated_at": isoformat(session.updated_at),
        "last_seq": session.last_seq,
    }


class SessionSummary(TypedDict):
    id: str
    purpose: str
    created_by: str
    is_active: bool
    last_seq: int
    read_seq: int
    unread: int
    last_activity: Timestamp


class SessionList(TypedDict):
    success: Literal[True]
    sessions: list[SessionSummary]
    count: int
    has_more: bool


@agent_tool(permission="write")
def create_session(
    agent: Viewer,
    purpose: Annotated[str, Field(min_length=1, max_length=conf.get("SCS_MAX_PURPOSE_LENGTH"),
                                  description="What the session is for, in a sentence.")],
    metadata: Metadata = None,
    auth_token: AuthToken = None,
) -> SessionCreated:
    """Create a session for agents to share messages in.

    Returns session_id; pass it to add_message, get_messages and the search tools.
    """
    session = operations.create_session(purpose, agent.id, metadata)
    return {"success": True, "session_id": session.id, "created_by": agent.id,
            "created_at": isoformat(session.created_at)}


@agent_tool(permission="read")
def get_session(agent: Viewer, session_id: SessionId, auth_token: AuthToken = None) -> SessionDetails:
    """A session's details and its most recent messages that you may see (up to 50, oldest first).

    The messages stop at the read budget (about 512 KiB); has_more says older ones exist
    (read them with get_messages).
    """
    session = operations.get_session(session_id)
    recent, has_more = reads.page(operations.visible_messages(agent, session.id).order_by("-seq"), RECENT)
    recent.reverse()
    return {
        "success": True,
        "session": session_record(session),
        "messages": [message_record(m) for m in recent],
        "message_count": len(recent),
        "has_more": has_more,
    }


@agent_tool(permission="read")
def list_sessions(
    agent: Viewer,
    include_closed: Annotated[bool, Field(description="Closed sessions too.")] = False,
    limit: Annotated[int, Field(ge=1, le=200, description="How many sessions at most.")] = 50,
    offset: Annotated[int, Field(ge=0, description=(
        f"How many to skip, at most {conf.get('SCS_MAX_OFFSET'):,}."))] = 0,
    auth_token: AuthToken = None,
) -> SessionList:
    """Sessions you may join, most recently active first, with has_more.

    Each has its last_seq, your read cursor (read_seq, see mark_read) and unread: how many
    messages after it you may see and did not send.
    """
    sessions, has_more = operations.list_sessions(agent, include_closed=include_closed, limit=limit, offset=offset)
    listed = [{
        "id": session.id, "purpose": session.purpose, "created_by": session.created_by,
        "is_active": session.is_active, "last_seq": session.last_seq, "read_seq": session.read_seq,
        "unread": session.unread, "last_activity": isoformat(session.updated_at),
    } for session in sessions]
    return {"success": True, "sessions": listed, "count": len(listed), "has_more": has_more}
