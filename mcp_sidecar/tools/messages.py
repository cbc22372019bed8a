"""Message tools."""

from typing import Annotated, Literal, TypedDict

from pydantic import Field

from mcp_sidecar.app import agent_tool
from mcp_sidecar.params import AuthToken, Metadata, SessionId, VisibilityLevel
from mcp_sidecar.results import MessagePage, Timestamp
from realtime import conf, operations, read_cursors
from realtime.envelope import message_record
from realtime.errors import ErrorCode, OperationError
from realtime.timestamps import isoformat
from realtime.visibility import Viewer


class MessageAdded(TypedDict):
    success: Literal[True]
    message_id: int
    seq: int
    timestamp: Timestamp


class Messages(MessagePage):
    next_since_seq: int | None
    total_count: int  # every message you may see within the filters (as shared-context-server 1.1 answered)


@agent_tool(permission="write")
def add_message(
    agent: Viewer,
    session_id: SessionId,
    content: Annotated[str, Field(min_length=1, max_length=conf.get("SCS_MAX_CONTENT_LENGTH"),
                                  description="The message text. Shown to people as plain text.")],
    visibility: Annotated[VisibilityLevel, Field(description=(
        "public: everyone; private: only you; agent_only: agents of your agent type; "
        "admin_only: admins (needs the admin permission)."))] = "public",
    metadata: Metadata = None,
    parent_message_id: Annotated[int | None, Field(ge=1, le=2**63 - 1, description=(
        "Reply to this message (its id from add_message or get_messages, same session)."))] = None,
    auth_token: AuthToken = None,
) -> MessageAdded:
    """Add a message to a session.

    Every viewer of the session who may see it receives it live. Returns its
    message_id and its seq (its position in the session: 1, 2, 3 ...).
    """
    message = operations.add_message(
        session_id, sender=agent.id, sender_type=agent.agent_type, content=content, visibility=visibility,
        metadata=metadata, parent_message_id=parent_message_id, may_write_admin_only=agent.is_admin,
    )
    return {"success": True, "message_id": message.id, "seq": message.seq,
            "timestamp": isoformat(message.timestamp)}


@agent_tool(permission="read")
def get_messages(
    agent: Viewer,
    session_id: SessionId,
    limit: Annotated[int, Field(ge=1, le=1000, description="How many messages at most.")] = 50,
    offset: Annotated[int, Field(ge=0, description=(
        f"How many to skip, at most {conf.get('SCS_MAX_OFFSET'):,}; page further with since_seq."))] = 0,
    visibility_filter: Annotated[VisibilityLevel | None, Field(
        description="Only messages of this visibility.")] = None,
    since_seq: Annotated[int | None, Field(ge=0, le=2**63 - 1, description="Only messages after this seq.")] = None,
    thread_id: Annotated[int | None, Field(ge=1, le=2**63 - 1, description=(
        "Only this message and every reply below it."))] = None,
    unread_only: Annotated[bool, Field(description=(
        "Only messages after your read cursor (with since_seq: after the later of the two)."))] = False,
    mark_read: Annotated[bool, Field(description=(
        "Move your read cursor to the newest seq returned (it never moves back); not with thread_id, "
        "visibility_filter or offset."))] = False,
    auth_token: AuthToken = None,
) -> Messages:
    """Messages of a session that you may see, oldest first (by seq), with has_more.

    You see public messages, your own private ones, agent_only messages from
    agents of your type, and admin_only ones if you hold admin. A response stops at
    limit or at the read budget (about 512 KiB, always at least one message); when
    has_more is true, call again with since_seq=next_since_seq. total_count: how many
    messages you may see within the filters, all pages together. The server keeps a read
    cursor per agent and session: unread_only=true reads after it, mark_read=true moves it.
    """
    if unread_only:
        operations.check_session_id(session_id)
        since_seq = max(since_seq or 0, read_cursors.read_seq(agent.id, session_id))
    filters = {"visibility_filter": visibility_filter, "since_seq": since_seq, "thread_id": thread_id}
    messages, has_more = operations.list_messages(agent, session_id, limit=limit, offset=offset, **filters)
    if mark_read and (thread_id is not None or visibility_filter is not None or offset):
        # Those pages leave out messages between the ones they return: marking would call those read too.
        # Checked after the read, so that a bad argument is named first.
        raise OperationError(
            ErrorCode.INVALID_ARGUMENT, "mark_read marks everything up to the newest seq returned, so it cannot be "
            "combined with thread_id, visibility_filter or offset", "Read with since_seq (or unread_only) alone to "
            "mark, or call mark_read(session_id, seq) for what you have read.",
        )
    if mark_read and messages:
        read_cursors.mark(agent.id, session_id, messages[-1].seq)
    return {"success": True, "messages": [message_record(m) for m in messages], "count": len(messages),
            "has_more": has_more, "next_since_seq": messages[-1].seq if has_more and messages else None,
            "total_count": operations.count_messages(agent, session_id, **filters)}
