"""Agent tokens on the WebSocket handshake: ``TokenAuthMiddleware``, and ``ViewerAuthMiddleware`` with people too.

An agent presents its token as ``Authorization: Bearer <token>`` on the handshake.
The middleware checks it (signature, issuer, expiry, the ``read`` permission) and sets:

- ``scope["agent"]``: the token's claims (``realtime.tokens.AgentClaims``), or None;
- ``scope["agent_error"]``: None, or why a presented token was refused (a ``TokenError`` code).

Any Authorization header means the client chose a token: one that fails is final,
even with a signed-in session cookie. Wrap the WebSocket routes in it, and in
Channels' ``AuthMiddlewareStack`` for people; ``ViewerAuthMiddleware`` does both::

    "websocket": ExactOriginValidator(ViewerAuthMiddleware(URLRouter(websocket_urlpatterns)))

``ViewerAuthMiddleware`` sends a handshake with an Authorization header and no
cookie (an agent's, not a browser's) past ``AuthMiddlewareStack``: its session and
user would go unused yet stay in memory as long as the connection, about 3 KiB
each of 10,000. With a cookie too, the user is read as before (the dashboard, for
people only, still admits a signed-in user whose client also sends a token).

It reads no database: the consumer registers the connection with ``realtime.live.access``
first and then checks the token's credential, so a key revoked after that read is
caught by the next check of open connections.
"""

from channels.auth import AuthMiddlewareStack
from channels.middleware import BaseMiddleware
from django.core.exceptions import ImproperlyConfigured

from realtime import tokens
from realtime.errors import ErrorCode
from realtime.shared_secret import bearer

AGENT = "agent"
AGENT_ERROR = "agent_error"


def read_claims(token):
    """The claims of a valid token holding ``read``; raises ``tokens.TokenError`` otherwise."""
    claims = tokens.verify(token)
    if "read" not in claims.permissions:
        raise tokens.TokenError(ErrorCode.PERMISSION_DENIED, "the token does not hold the read permission")
    return claims


def bearer_token(scope):
    """The handshake's bearer token; "" for another scheme; None when there is no Authorization header."""
    value = dict(scope.get("headers", ())).get(b"authorization")
    return None if value is None else bearer(value.decode("latin-1"))


class TokenAuthMiddleware(BaseMiddleware):
    """Puts the handshake's agent token, checked, into ``scope["agent"]`` (and ``scope["agent_error"]``)."""

    async def __call__(self, scope, receive, send):
        scope = dict(scope, **{AGENT: None, AGENT_ERROR: None})
        token = bearer_token(scope)
        if token is not None:
            try:
                scope[AGENT] = read_claims(token)
            except tokens.TokenError as exc:
                scope[AGENT_ERROR] = exc.code
        return await self.inner(scope, receive, send)


class ViewerAuthMiddleware:
    """``TokenAuthMiddleware``, behind Channels' ``AuthMiddlewareStack`` unless the handshake has a token and no cookie.

    It hands the connection on and keeps nothing of it (an ASGI application that returns the inner one's
    coroutine rather than awaiting it in a coroutine of its own).
    """

    _asgi_single_callable = True  # for asgiref: a callable(scope, receive, send), though not a coroutine function

    def __init__(self, inner):
        self.agents = TokenAuthMiddleware(inner)
        self.people = AuthMiddlewareStack(self.agents)

    def __call__(self, scope, receive, send):
        headers = dict(scope.get("headers", ()))
        agent_only = b"authorization" in headers and b"cookie" not in headers
        return (self.agents if agent_only else self.people)(scope, receive, send)


def handshake_agent(scope):
    """``(claims, error)`` as ``TokenAuthMiddleware`` left them; a clear error where the routes lack it."""
    if AGENT not in scope:
        raise ImproperlyConfigured(
            "realtime's WebSocket routes must be wrapped in realtime.live.auth.TokenAuthMiddleware, e.g. "
            '"websocket": ExactOriginValidator(ViewerAuthMiddleware(URLRouter(websocket_urlpatterns))); '
            "see the README, 'Add to an existing Django project'"
        )
    return scope[AGENT], scope[AGENT_ERROR]
