"""Authentication tools."""

import time
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import Field

from mcp_sidecar.app import agent_tool
from realtime import audit, tokens
from realtime.errors import OperationError

AgentId = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:@-]+$",
                               description="Your stable agent id, e.g. 'claude-reviewer-1'.")]
AgentType = Annotated[str, Field(min_length=1, max_length=50, pattern=r"^[A-Za-z0-9_.-]+$",
                                 description="Your kind of agent, e.g. 'claude', 'gemini', 'admin'.")]
Permission = Literal["read", "write", "admin"]


def token_result(token, claims):
    return {
        "success": True,
        "token": token,
        "token_type": "Bearer",
        "agent_id": claims.agent_id,
        "agent_type": claims.agent_type,
        "permissions": list(claims.permissions),
        "expires_at": datetime.fromtimestamp(claims.expires_at, UTC).isoformat().replace("+00:00", "Z"),
    }


@agent_tool
def authenticate_agent(
    agent_id: AgentId,
    agent_type: AgentType,
    requested_permissions: Annotated[list[Permission], Field(max_length=3)] = ["read", "write"],  # noqa: B006
) -> dict:
    """Get a token for this agent. Pass it as auth_token to every other tool.

    Permissions are granted by agent type: admin and system types may hold admin;
    claude, gemini, generic and test may read and write; other types read only.
    The result lists what was granted, which may be less than requested.
    """
    granted = tokens.granted_permissions(agent_type, requested_permissions)
    token, claims = tokens.issue(agent_id, agent_type, granted)
    audit.record("agent_authenticated", agent_id, agent_type=agent_type, permissions=granted)
    return token_result(token, claims)


@agent_tool
def refresh_token(
    current_token: Annotated[str, Field(min_length=1, max_length=4096, description=(
        "The token to replace, as authenticate_agent or refresh_token returned it. "
        "It may have expired, but only within the server's grace window."))],
) -> dict:
    """Get a fresh token for the same agent, agent type and permissions.

    Call this when a tool answers TOKEN_EXPIRED. A token that expired within the
    grace window (SCS_TOKEN_REFRESH_GRACE, default 7 days) is still accepted here;
    after that, or for a token this server did not sign, call authenticate_agent.
    """
    try:
        token, claims = tokens.refresh(current_token)
    except tokens.TokenError as exc:
        audit.record("token_refresh_refused", reason=exc.code)
        hint = (
            "Call authenticate_agent for a new token."
            if exc.code == "TOKEN_EXPIRED"
            else "Pass the token exactly as this server issued it, or call authenticate_agent."
        )
        raise OperationError(exc.code, exc.message, hint) from None
    audit.record("token_refreshed", claims.agent_id, agent_type=claims.agent_type,
                 permissions=list(claims.permissions))
    result = token_result(token, claims)
    result["expires_in"] = max(0, claims.expires_at - int(time.time()))
    result["issued_at"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return result
