"""get_usage_guidance: what this agent may do with its permissions, and how to use the tools well."""

import time
from typing import Annotated, Any, Literal, TypedDict

from pydantic import Field

from mcp_sidecar.app import TOOL_PERMISSIONS, agent_tool
from mcp_sidecar.auth import admission
from mcp_sidecar.params import AuthToken
from mcp_sidecar.results import Timestamp
from realtime import conf, timestamps
from realtime.errors import ErrorCode
from realtime.timestamps import isoformat
from realtime.tokens import AgentClaims
from realtime.visibility import Viewer

GUIDANCE = {
    "operations": {
        "workflow": [
            "authenticate_agent once; pass the token as auth_token to every other tool.",
            "create_session(purpose), or list_sessions to find one to join (each with your unread count); share "
            "the session_id with the agents you work with.",
            "The loop: wait_for_messages(session_id, since_seq=cursor) blocks until something new arrives; pass "
            "the last_seq it returns as the next cursor (start from 0). Reply with add_message, then "
            "mark_read(session_id, seq) (or wait_for_messages(..., mark_read=true)) to record how far you read.",
            "get_inbox(since=cursor, wait=...) returns the messages that mention you (@your_agent_id, or "
            "metadata.mentions) in any session; pass its cursor as since next time. Without since it returns the "
            "mentions you have not marked read.",
            "Clients that take pushed notifications (Claude Code channels) call watch_session(session_id) instead "
            "of waiting, and unwatch_session(session_id) to stop.",
            "get_messages(since_seq=N) reads what is new since seq N; unread_only=true reads after your read "
            "cursor, mark_read=true moves it.",
            "Reply in a thread with add_message(parent_message_id=...); read it with get_messages(thread_id=...).",
            "search_context to find earlier work by words; search_by_sender / search_by_timerange to narrow down.",
            "set_memory / get_memory keep your own notes between calls, delete_memory forgets one; "
            "give them expires_in for scratch data.",
        ],
        "limits": {
            "content_chars": conf.get("SCS_MAX_CONTENT_LENGTH"),
            "metadata_bytes": conf.get("SCS_MAX_METADATA_BYTES"),
            "memory_value_bytes": conf.get("SCS_MAX_MEMORY_VALUE_BYTES"),
            "memory_ttl_seconds": conf.get("SCS_MAX_MEMORY_TTL"),
            "get_messages_limit": 1000,
            "wait_max_seconds": conf.get("SCS_WAIT_MAX_TIMEOUT"),
            "search_context_limit": 100,
        },
    },
    "coordination": {
        "patterns": [
            "One session per task; state the task in the purpose so people watching understand it.",
            "Use public for results others need, agent_only for coordination among agents of your type.",
            "Before taking over a task, search_context for what was already decided.",
            "Wait with wait_for_messages(since_seq=last_seq) instead of polling or re-reading the whole session.",
            "Mention an agent (@agent_id) to reach it in its inbox, wherever it is waiting.",
            "Keep your progress in set_memory(session_id=...) so you can resume after a restart.",
        ],
    },
    "security": {
        "rules": [
            "Never put tokens, keys or secrets in message content, metadata or memory values.",
            "Identity: an agent key (scs_..., issued by staff for one agent id and agent type) admits you as that "
            "agent only: authenticate_agent must use its agent_id and agent_type, grants at most the key's "
            "permissions, and its tokens work on the MCP endpoint only for a client connected with a key of that "
            "agent. Revoking or expiry of the key ends its tokens at their next call.",
            "The server's shared key (SCS_API_KEY) admits any agent id that has no key of its own, with the "
            "permissions of its agent type, capped by the server (admin only where the operator allows it). "
            "Anyone holding the shared key can act as any such agent id: ask staff for your own key.",
            "refresh_token retires the token it replaces; after SCS_TOKEN_MAX_AGE since authenticate_agent "
            "(default 30 days) you must authenticate again.",
            "public: everyone (people watching in the browser too); private: only you; "
            "agent_only: agents of your type; admin_only: admins.",
            "Your memory is private to your agent id; no other agent can read or list it.",
            "Refusals (missing permission, another agent's memory) are recorded in the audit log.",
        ],
    },
    "troubleshooting": {
        "error_codes": {code.value: code.advice for code in ErrorCode},
    },
}


class AgentInfo(TypedDict):
    agent_id: str
    agent_type: str
    permissions: list[Literal["read", "write", "admin"]]
    expires_at: Timestamp
    can_refresh: bool
    must_authenticate_by: Timestamp
    admitted_by: str


class Guidance(TypedDict):
    success: Literal[True]
    guidance_type: Literal["operations", "coordination", "security", "troubleshooting"]
    access_level: Literal["ADMIN", "AGENT", "READ_ONLY"]
    agent_info: AgentInfo
    available_tools: list[str]
    unavailable_tools: list[str]
    visible_levels: list[str]
    guidance: dict[str, Any]
    generated_at: Timestamp


def access_level(permissions):
    return "ADMIN" if "admin" in permissions else "AGENT" if "write" in permissions else "READ_ONLY"


@agent_tool(permission="read")
def get_usage_guidance(
    agent: Viewer,
    claims: AgentClaims,
    guidance_type: Annotated[Literal["operations", "coordination", "security", "troubleshooting"], Field(
        description="Which guidance: operations, coordination, security or troubleshooting.")] = "operations",
    auth_token: AuthToken = None,
) -> Guidance:
    """How to use this server well, and exactly which tools your token's permissions allow.

    Start here if you are new: it lists the tools you may call, the limits, and what each error code means.
    """
    admitted = admission()
    # Straight from each tool's declaration: the tools that take no token first.
    tools = sorted(TOOL_PERMISSIONS, key=lambda name: TOOL_PERMISSIONS[name] is not None)
    allowed = [name for name in tools if TOOL_PERMISSIONS[name] in (None, *agent.permissions)]
    denied = [name for name in tools if name not in allowed]
    visible = ["public", "private (your own)", "agent_only (your agent type)"]
    if agent.is_admin:
        visible = ["public", "private (everyone's)", "agent_only (every type)", "admin_only"]
    return {
        "success": True,
        "guidance_type": guidance_type,
        "access_level": access_level(agent.permissions),
        "agent_info": {
            "agent_id": agent.id,
            "agent_type": agent.agent_type,
            "permissions": list(agent.permissions),
            "expires_at": isoformat(claims.expires_at),
            "can_refresh": claims.auth_time + conf.get("SCS_TOKEN_MAX_AGE") > time.time(),
            "must_authenticate_by": isoformat(claims.auth_time + conf.get("SCS_TOKEN_MAX_AGE")),
            "admitted_by": "shared key" if admitted.is_shared else f"agent key {admitted.key_id}",
        },
        "available_tools": allowed,
        "unavailable_tools": denied,
        "visible_levels": visible,
        "guidance": GUIDANCE[guidance_type],
        "generated_at": timestamps.now(),
    }
