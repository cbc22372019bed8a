"""Who is calling: the API key that admits a client, and the agent token on each call."""

import hmac
import json

from fastmcp.server.dependencies import get_http_headers

from realtime import audit, conf, tokens
from realtime.errors import OperationError
from realtime.visibility import Viewer

MCP_PATH_PREFIX = "/mcp"


def api_key_matches(presented):
    expected = conf.get("SCS_API_KEY")
    return bool(expected) and hmac.compare_digest(presented.encode(), expected.encode())


class ApiKeyMiddleware:
    """ASGI middleware: every request under /mcp needs ``X-API-Key``; /health stays open."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"].startswith(MCP_PATH_PREFIX):
            presented = dict(scope["headers"]).get(b"x-api-key", b"").decode("latin-1")
            if not api_key_matches(presented):
                body = json.dumps({
                    "success": False,
                    "error": "missing or wrong X-API-Key header",
                    "code": "API_KEY_REQUIRED",
                    "hint": "Send the server's API key (SCS_API_KEY) as the X-API-Key header.",
                }).encode()
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"application/json")]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def bearer_from_headers():
    """The token from ``Authorization: Bearer`` on this HTTP call, if any (none on stdio)."""
    authorization = get_http_headers(include={"authorization"}).get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def caller(auth_token=None, *, permission="read"):
    """The agent making this call, as a Viewer holding ``permission``; else OperationError."""
    token = auth_token or bearer_from_headers()
    if not token:
        raise OperationError(
            "AUTH_REQUIRED", "this tool needs an agent token",
            "Call authenticate_agent first, then pass its token as auth_token or as Authorization: Bearer.",
        )
    try:
        claims = tokens.verify(token)
    except tokens.TokenError as exc:
        hint = (
            "Get a new token with refresh_token or authenticate_agent."
            if exc.code == "TOKEN_EXPIRED"
            else "Pass the token exactly as authenticate_agent returned it."
        )
        raise OperationError(exc.code, exc.message, hint) from None
    viewer = Viewer.for_agent(claims.agent_id, claims.agent_type, claims.permissions)
    if permission not in claims.permissions:
        audit.record("permission_denied", claims.agent_id, needed=permission)
        raise OperationError(
            "PERMISSION_DENIED", f"this call needs the '{permission}' permission",
            f"Authenticate as an agent type that may hold '{permission}' (see get_usage_guidance).",
        )
    return viewer
