"""Search tools: fuzzy text, by sender, by time range; only over messages you may read."""

from typing import Annotated, Literal, TypedDict

from pydantic import Field

from mcp_sidecar.app import agent_tool
from mcp_sidecar.params import AuthToken, SessionId
from mcp_sidecar.results import MessagePage, MessageRecord
from realtime import conf, search
from realtime.envelope import message_record
from realtime.visibility import Viewer


class Match(TypedDict):
    message: MessageRecord
    score: float
    match_preview: str
    relevance: Literal["high", "medium", "low"]


class Matches(TypedDict):
    success: Literal[True]
    query: str
    message_count: int
    results: list[Match]
    scanned: int
    truncated: bool
    has_more: bool
    search_time_ms: float


class BySender(MessagePage):
    sender: str
    next_before_seq: int | None


class TimeRange(TypedDict):
    start: str
    end: str


class InTimeRange(MessagePage):
    timerange: TimeRange
    next_since_seq: int | None


@agent_tool(permission="read")
def search_context(
    agent: Viewer,
    session_id: SessionId,
    query: Annotated[str, Field(min_length=1, max_length=conf.get("SCS_SEARCH_MAX_QUERY"),
                                description="Words to look for; typos are tolerated.")],
    fuzzy_threshold: Annotated[float, Field(ge=0, le=100, description=(
        "Lowest similarity score (0-100) a match may have. 60 finds near matches; 85+ nearly exact ones."))] = 60.0,
    limit: Annotated[int, Field(ge=1, le=100, description="How many matches at most.")] = 10,
    search_metadata: Annotated[bool, Field(description="Also match text inside message metadata.")] = True,
    search_scope: Annotated[Literal["all", "public", "private"], Field(description=(
        "all: every message you may read; public: public messages only; private: your own private messages."
    ))] = "all",
    auth_token: AuthToken = None,
) -> Matches:
    """Fuzzy-search a session's messages (content, sender and, optionally, metadata).

    Returns results ranked best first, each with the message, its score (0-100),
    a match_preview of the matching text, and a relevance of high/medium/low.
    Only messages you may read are searched: public ones, your own private ones,
    agent_only ones from agents of your type, and admin_only ones if you hold admin.
    The newest messages are searched first; truncated=true means the scan limit was
    reached before the oldest (search a shorter query, or use search_by_timerange).
    has_more=true means more matches exist than fit in one response (raise fuzzy_threshold
    or lower limit).
    """
    found = search.search_messages(
        agent, session_id, query, threshold=fuzzy_threshold, limit=limit, search_metadata=search_metadata,
        scope=search_scope,
    )
    return {"success": True, "query": query, "message_count": len(found["results"]), **found}


@agent_tool(permission="read")
def search_by_sender(
    agent: Viewer,
    session_id: SessionId,
    sender: Annotated[str, Field(min_length=1, max_length=100, description="The sender's agent id, exactly.")],
    limit: Annotated[int, Field(ge=1, le=100, description="How many messages at most.")] = 20,
    before_seq: Annotated[int | None, Field(ge=1, le=2**63 - 1, description=(
        "Only messages before this seq (pass next_before_seq to read older ones)."))] = None,
    auth_token: AuthToken = None,
) -> BySender:
    """The newest messages a given agent sent to a session, newest first, with has_more.

    Only messages you may read are returned (public; your own private; agent_only
    from your agent type; admin_only if you hold admin). A response stops at the
    read budget (about 512 KiB); when has_more is true, call again with
    before_seq=next_before_seq for older ones.
    """
    messages, has_more = search.messages_by_sender(agent, session_id, sender, limit=limit, before_seq=before_seq)
    return {"success": True, "sender": sender, "messages": [message_record(m) for m in messages],
            "count": len(messages), "has_more": has_more,
            "next_before_seq": messages[-1].seq if has_more and messages else None}


@agent_tool(permission="read")
def search_by_timerange(
    agent: Viewer,
    session_id: SessionId,
    start_time: Annotated[str, Field(min_length=1, max_length=64, description=(
        "ISO 8601 start, inclusive, e.g. 2026-05-01T14:00:00Z (no zone means UTC)."))],
    end_time: Annotated[str, Field(min_length=1, max_length=64, description=(
        "ISO 8601 end, inclusive; must not be before start_time."))],
    limit: Annotated[int, Field(ge=1, le=200, description="How many messages at most.")] = 50,
    since_seq: Annotated[int | None, Field(ge=0, le=2**63 - 1, description=(
        "Only messages after this seq (pass next_since_seq to continue)."))] = None,
    auth_token: AuthToken = None,
) -> InTimeRange:
    """Messages of a session sent between two times, oldest first, with has_more.

    Only messages you may read are returned (public; your own private; agent_only
    from your agent type; admin_only if you hold admin). An unparseable time is
    INVALID_DATETIME; a start after the end is INVALID_TIME_RANGE. A response stops
    at the read budget (about 512 KiB); when has_more is true, call again with
    since_seq=next_since_seq.
    """
    messages, has_more = search.messages_in_timerange(agent, session_id, start_time, end_time, limit=limit,
                                                      since_seq=since_seq)
    return {"success": True, "timerange": {"start": start_time, "end": end_time},
            "messages": [message_record(m) for m in messages], "count": len(messages), "has_more": has_more,
            "next_since_seq": messages[-1].seq if has_more and messages else None}

