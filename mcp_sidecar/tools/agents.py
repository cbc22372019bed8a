"""Authentication tools."""

import time
from typing import Annotated, Literal, TypedDict

from django.db import transaction
from pydantic import Field

from mcp_sidecar.app import agent_tool
from mcp_sidecar.auth import admission, check_owner, throttle
from mcp_sidecar.results import Timestamp
from realtime import audit, conf, credentials, timestamps, tokens
from realtime.errors import ErrorCode, OperationError
from realtime.timestamps import isoformat

AgentId = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:@-]+$",
                               description="Your stable agent id, e.g. 'claude-reviewer-1'.")]
AgentType = Annotated[str, Field(min_length=1, max_length=50, pattern=r"^[A-Za-z0-9_.-]+$",
                                 description="Your kind of agent, e.g. 'claude', 'gemini', 'admin'.")]
Permission = Literal["read", "write", "admin"]


class TokenGranted(TypedDict):
    success: Literal[True]
    token: str
    token_type: Literal["Bearer"]
    agent_id: str
    agent_type: str
    permissions: list[Permission]
    expires_at: Timestamp


class TokenRefreshed(TokenGranted):
    expires_in: int
    issued_at: Timestamp


def token_result(token, claims) -> TokenGranted:
    return {
        "success": True,
        "token": token,
        "token_type": "Bearer",
        "agent_id": claims.agent_id,
        "agent_type": claims.agent_type,
        "permissions": list(claims.permissions),
        "expires_at": isoformat(claims.expires_at),
    }


def admission_bucket(admitted):
    """Calls that carry no token are counted per key: an agent key's agent, or everyone on the shared key."""
    return f"agent:{admitted.agent_id}" if not admitted.is_shared else "shared-key"


@agent_tool(permission=None)
def authenticate_agent(
    agent_id: AgentId,
    agent_type: AgentType,
    requested_permissions: Annotated[list[Permission], Field(max_length=3)] = ["read", "write"],  # noqa: B006
) -> TokenGranted:
    """Get a token for this agent. Pass it as auth_token to every other tool.

    With an agent key (X-API-Key: scs_...), use the agent_id and agent_type the key
    was issued for; you get the requested permissions the key allows. With the
    server's shared key, permissions follow the agent type (admin and system may
    hold admin only where the server allows it; claude, gemini, generic and test
    read and write; other types read only), and an agent id that has its own key
    is refused. The result lists what was granted, which may be less than requested.
    """
    admitted = admission()
    throttle(admission_bucket(admitted))
    try:
        granted = credentials.grant(admitted, agent_id, agent_type, requested_permissions)
    except OperationError as exc:
        audit.record("authentication_refused", admitted.agent_id or agent_id, reason=exc.code,
                     requested_agent=agent_id, requested_type=agent_type)
        raise
    token, claims = tokens.issue(agent_id, agent_type, granted, credential=admitted.key_id)
    audit.record("agent_authenticated", agent_id, agent_type=agent_type, permissions=granted,
                 key_id=admitted.key_id or "shared")
    return token_result(token, claims)


def refused(code, message, hint):
    audit.record("token_refresh_refused", reason=code)
    return OperationError(code, message, hint)


@agent_tool(permission=None)
def refresh_token(
    current_token: Annotated[str, Field(min_length=1, max_length=4096, description=(
        "The token to replace, as authenticate_agent or refresh_token returned it. "
        "It may have expired, but only within the server's grace window."))],
) -> TokenRefreshed:
    """Get a fresh token for the same agent, agent type and permissions; the old token stops working.

    Call this when a tool answers TOKEN_EXPIRED. A token that expired within the
    grace window (SCS_TOKEN_REFRESH_GRACE, default 7 days) is still accepted here.
    Call authenticate_agent instead after that, for a token this server did not sign,
    for a revoked token (TOKEN_REVOKED), or once your last authenticate_agent is older
    than SCS_TOKEN_MAX_AGE (default 30 days: REAUTHENTICATION_REQUIRED).
    """
    admitted = admission()
    throttle(admission_bucket(admitted))
    try:
        old = tokens.verify_for_refresh(current_token)
    except tokens.TokenError as exc:
        hint = (
            "Call authenticate_agent for a new token."
            if exc.code == ErrorCode.TOKEN_EXPIRED
            else "Pass the token exactly as this server issued it, or call authenticate_agent."
        )
        raise refused(exc.code, exc.message, hint) from None
    if not old.token_id:
        raise refused(ErrorCode.TOKEN_INVALID, "the token has no id and cannot be refreshed",
                      "Call authenticate_agent.")
    check_owner(old, admitted)
    if credentials.token_refusal(old):
        raise refused(ErrorCode.TOKEN_REVOKED, "this token was revoked or already refreshed, or its key was revoked",
                      "Call authenticate_agent for a new token (with a valid key).")
    remaining = old.auth_time + conf.get("SCS_TOKEN_MAX_AGE") - int(time.time())
    if remaining <= 0:
        raise refused(ErrorCode.REAUTHENTICATION_REQUIRED,
                      "this agent authenticated longer ago than the server allows tokens to be refreshed",
                      "Call authenticate_agent again.")
    granted = credentials.regrant(old)
    with transaction.atomic():
        if not credentials.retire(old, "refreshed"):  # a concurrent refresh of the same token won
            raise refused(ErrorCode.TOKEN_REVOKED, "this token was already refreshed",
                          "Use the token the other refresh returned, or call authenticate_agent.")
        token, claims = tokens.issue(old.agent_id, old.agent_type, granted,
                                     min(conf.get("SCS_TOKEN_TTL"), remaining),
                                     credential=old.credential, auth_time=old.auth_time)
    audit.record("token_refreshed", claims.agent_id, agent_type=claims.agent_type,
                 permissions=list(claims.permissions))
    result = token_result(token, claims)
    result["expires_in"] = max(0, claims.expires_at - int(time.time()))
    result["issued_at"] = timestamps.now()
    return result
