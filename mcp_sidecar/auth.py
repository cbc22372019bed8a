"""Who is calling: the key that admits a client, and the agent token on each call.

Over HTTP, ``ApiKeyMiddleware`` admits each request under /mcp by its key (the shared
``SCS_API_KEY`` or an agent key, as ``X-API-Key`` or ``Authorization: Bearer scs_…``)
and keeps the ``credentials.Admission`` in the ASGI scope, where ``admission()`` finds
it for the tool that request runs. Over stdio there are no headers: the process was
started with the server's own secrets, so it is admitted as the agent whose key is in
``SCS_AGENT_KEY``, or else as the shared key (``use_stdio_key``).
"""

import json
import os

import anyio
from django.db import close_old_connections
from fastmcp.server.dependencies import get_http_headers, get_http_request

from mcp_sidecar.ratelimit import tool_limits
from realtime import audit, credentials, tokens
from realtime.errors import ErrorCode, OperationError
from realtime.visibility import Viewer

MCP_PATH_PREFIX = "/mcp"
SCOPE_KEY = "scs.admission"
STDIO_KEY_VARIABLE = "SCS_AGENT_KEY"

_stdio = {"enabled": False, "key": ""}


def presented_key(headers):
    """The key a request presents: ``X-API-Key``, else an agent key as ``Authorization: Bearer``."""
    key = headers.get(b"x-api-key", b"").decode("latin-1").strip()
    if key:
        return key
    scheme, _, value = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value.startswith(credentials.KEY_PREFIX):
        return value
    return ""


def admit(presented):
    close_old_connections()
    return credentials.admit(presented)


class ApiKeyMiddleware:
    """ASGI middleware: every request under /mcp needs a key that admits it; /health stays open."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"].startswith(MCP_PATH_PREFIX):
            presented = presented_key(dict(scope["headers"]))
            admission = None
            if presented.startswith(credentials.KEY_PREFIX):
                admission = await anyio.to_thread.run_sync(admit, presented)  # one indexed query
            elif presented:
                admission = credentials.admit(presented)  # the shared key: no query
            if admission is None:
                body = json.dumps({
                    "success": False,
                    "error": "missing, wrong, revoked or expired API key",
                    "code": ErrorCode.API_KEY_REQUIRED,
                    "hint": "Send your agent key (or the server's SCS_API_KEY) as the X-API-Key header.",
                }).encode()
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"application/json")]})
                await send({"type": "http.response.body", "body": body})
                return
            scope[SCOPE_KEY] = admission
        await self.app(scope, receive, send)


def use_stdio_key():
    """Admit this stdio process: as ``SCS_AGENT_KEY``'s agent if set (ValueError if it admits nobody), else shared."""
    key = os.environ.get(STDIO_KEY_VARIABLE, "").strip()
    if key and not key.startswith(credentials.KEY_PREFIX):
        raise ValueError(f"{STDIO_KEY_VARIABLE} is not an agent key (they start with {credentials.KEY_PREFIX})")
    if key and admit(key) is None:
        raise ValueError(f"{STDIO_KEY_VARIABLE} is not a valid agent key (unknown, revoked or expired)")
    _stdio.update(enabled=True, key=key)


def admission():
    """The Admission of the client making this call; OperationError if there is none."""
    try:
        found = get_http_request().scope.get(SCOPE_KEY)
    except RuntimeError:  # no HTTP request: stdio
        found = None
        if _stdio["enabled"]:
            # Checked at every call, so revoking the key stops a running stdio client too.
            found = credentials.admit(_stdio["key"]) if _stdio["key"] else credentials.shared_admission()
    if found is None:
        raise OperationError(ErrorCode.API_KEY_REQUIRED, "this client was not admitted by a key",
                             "Send your agent key (or the server's SCS_API_KEY) as the X-API-Key header.")
    return found


def throttle(bucket):
    """Spend one call from ``bucket``'s allowance; RATE_LIMITED (with ``retry_after``) when it is used up."""
    wait = tool_limits.take(bucket)
    if wait:
        raise RateLimited(wait)


class RateLimited(OperationError):
    def __init__(self, retry_after):
        super().__init__(ErrorCode.RATE_LIMITED, "too many tool calls from this agent",
                         f"Wait {retry_after:.2f} s (retry_after) before the next call.")
        self.retry_after = retry_after

    def as_dict(self):
        return {**super().as_dict(), "retry_after": round(self.retry_after, 3)}


def bearer_from_headers():
    """The token from ``Authorization: Bearer`` on this HTTP call, if any (none on stdio; an agent key is no token)."""
    authorization = get_http_headers(include={"authorization"}).get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and not token.startswith(credentials.KEY_PREFIX) else ""


def token_error(exc):
    hint = (
        "Get a new token with refresh_token or authenticate_agent."
        if exc.code == ErrorCode.TOKEN_EXPIRED
        else "Pass the token exactly as authenticate_agent returned it."
    )
    return OperationError(exc.code, exc.message, hint)


def check_owner(claims, admitted):
    """A client admitted by an agent key may use that agent's tokens only; the shared key, no agent key's tokens."""
    if admitted.is_shared:
        if claims.credential:
            raise OperationError(
                ErrorCode.IDENTITY_MISMATCH, "this token was issued under an agent key; the shared key cannot use it",
                "Connect with that agent's key (X-API-Key).",
            )
        return
    if claims.agent_id != admitted.agent_id or claims.agent_type != admitted.agent_type:
        audit.record("identity_mismatch", admitted.agent_id, token_agent=claims.agent_id[:100])
        raise OperationError(
            ErrorCode.IDENTITY_MISMATCH, "this token belongs to another agent than the key this client connects with",
            f"Use a token from authenticate_agent(agent_id={admitted.agent_id!r}, "
            f"agent_type={admitted.agent_type!r}).",
        )


def refusal_error(code):
    return OperationError(code, "this token was revoked, refreshed or its key was revoked or has expired",
                          "Call authenticate_agent for a new token (with a valid key).")


def current_claims(auth_token=None):
    """The verified, unretired claims of this call's token, owned by the admitted client; else OperationError."""
    admitted = admission()
    token = auth_token or bearer_from_headers()
    if not token:
        raise OperationError(
            ErrorCode.AUTH_REQUIRED, "this tool needs an agent token",
            "Call authenticate_agent first, then pass its token as auth_token or as Authorization: Bearer.",
        )
    try:
        claims = tokens.verify(token)
    except tokens.TokenError as exc:
        raise token_error(exc) from None
    check_owner(claims, admitted)
    throttle(f"agent:{claims.agent_id}")  # before the database is asked anything
    refusal = credentials.token_refusal(claims)
    if refusal:
        raise refusal_error(refusal)
    return claims


def authorize(claims, permission):
    """The agent of these claims as a Viewer, if it holds ``permission``; else PERMISSION_DENIED."""
    if permission not in claims.permissions:
        audit.record("permission_denied", claims.agent_id, needed=permission)
        raise OperationError(
            ErrorCode.PERMISSION_DENIED, f"this call needs the '{permission}' permission",
            f"Authenticate as an agent type that may hold '{permission}' (see get_usage_guidance).",
        )
    return Viewer.for_agent(claims.agent_id, claims.agent_type, claims.permissions)


def caller(auth_token=None, *, permission="read"):
    """The agent making this call, as a Viewer holding ``permission``; else OperationError."""
    return authorize(current_claims(auth_token), permission)


def reader(*, public_ok=False):
    """Who reads a resource or prompt (they take no token argument), as a Viewer holding ``read``.

    The agent of the ``Authorization: Bearer`` token; without one, the agent whose own key admitted
    this client (``SCS_AGENT_KEY`` over stdio, where there are no headers; ``X-API-Key`` over HTTP).
    The shared key names no agent: without a token it reads public messages only where ``public_ok``
    (as shared-context-server 1.1 answered such reads), and needs a token everywhere else.
    """
    admitted = admission()
    if not bearer_from_headers() and admitted.is_shared and public_ok:
        return Viewer.public_reader()
    if bearer_from_headers() or admitted.is_shared:
        return caller(None)
    throttle(f"agent:{admitted.agent_id}")
    if "read" not in admitted.permissions:
        raise OperationError(ErrorCode.PERMISSION_DENIED, "this call needs the 'read' permission",
                             "Ask staff for a key that holds 'read'.")
    return Viewer.for_agent(admitted.agent_id, admitted.agent_type, list(admitted.permissions))
