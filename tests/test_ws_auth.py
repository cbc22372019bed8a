"""``realtime.live.auth``: the agent token on the WebSocket handshake, as ASGI middleware."""

import pytest
from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.core.exceptions import ImproperlyConfigured

from realtime import routing, tokens
from realtime.live.auth import TokenAuthMiddleware, ViewerAuthMiddleware, handshake_agent

pytestmark = [pytest.mark.asyncio(loop_scope="function"), pytest.mark.usefixtures("fresh_channel_layer")]


def token(permissions=("read",), **kwargs):
    return tokens.issue("alice", "claude", list(permissions), **kwargs)[0]


async def scope_after_middleware(*headers, middleware=TokenAuthMiddleware):
    """The scope an inner application sees behind ``middleware``, for a handshake with ``headers``."""
    seen = {}

    async def inner(scope, receive, send):
        seen.update(scope)
        await send({"type": "websocket.close", "code": 1000})

    comm = WebsocketCommunicator(middleware(inner), "/ws/x/", headers=list(headers))
    await comm.connect(timeout=3)
    await comm.wait(timeout=3)
    return seen


def bearer(value):
    return (b"authorization", value.encode())


async def test_a_good_token_puts_its_claims_in_the_scope():
    scope = await scope_after_middleware(bearer(f"Bearer {token(('read', 'write'))}"))
    claims, error = handshake_agent(scope)
    assert error is None
    assert (claims.agent_id, claims.agent_type, claims.permissions) == ("alice", "claude", ("read", "write"))


async def test_the_scheme_is_case_insensitive():
    claims, error = handshake_agent(await scope_after_middleware(bearer(f"bearer {token()}")))
    assert claims.agent_id == "alice" and error is None


async def test_no_token_is_neither_an_agent_nor_an_error():
    scope = await scope_after_middleware((b"cookie", b"sessionid=abc"))
    assert handshake_agent(scope) == (None, None)


@pytest.mark.parametrize(("header", "code"), [
    (lambda: "Bearer not-a-jwt", "TOKEN_INVALID"),
    (lambda: "Bearer " + tokens.jwt.encode({"sub": "alice", "iss": tokens.ISSUER, "iat": 0, "exp": 2**40,
                                            "agent_type": "claude", "permissions": ["read"]}, "x" * 32,
                                           algorithm="HS256"), "TOKEN_INVALID"),
    (lambda: f"Bearer {token(ttl=-10)}", "TOKEN_EXPIRED"),
    (lambda: f"Bearer {token(('write',))}", "PERMISSION_DENIED"),
    (lambda: "Bearer ", "AUTH_REQUIRED"),
    (lambda: f"Basic {token()}", "AUTH_REQUIRED"),
], ids=["garbage", "forged", "expired", "no read", "empty", "another scheme"])
async def test_a_bad_token_is_no_agent_and_says_why(header, code):
    assert handshake_agent(await scope_after_middleware(bearer(header()))) == (None, code)


async def test_the_outer_scope_is_not_changed():
    outer = {"type": "websocket", "path": "/ws/x/", "headers": [bearer(f"Bearer {token()}")]}
    seen = {}

    async def inner(scope, receive, send):
        seen.update(scope)

    await TokenAuthMiddleware(inner)(outer, None, None)
    assert "agent" in seen and "agent" not in outer


async def test_routes_not_wrapped_in_the_middleware_fail_with_a_clear_error(settings):
    settings.SCS_WS_PREFIX = ""
    forgot = AuthMiddlewareStack(URLRouter(routing.websocket_urlpatterns))
    comm = WebsocketCommunicator(forgot, "/ws/session_0123456789abcdef/", headers=[bearer(f"Bearer {token()}")])
    with pytest.raises(ImproperlyConfigured, match="TokenAuthMiddleware"):
        await comm.connect(timeout=3)


async def test_viewer_auth_checks_an_agents_token_and_skips_the_session():
    scope = await scope_after_middleware(bearer(f"Bearer {token()}"), middleware=ViewerAuthMiddleware)
    assert handshake_agent(scope)[0].agent_id == "alice"
    assert "user" not in scope and "session" not in scope and "cookies" not in scope  # the token decides alone


async def test_viewer_auth_reads_the_user_when_a_token_comes_with_a_cookie():
    scope = await scope_after_middleware(bearer("Bearer not-a-jwt"), (b"cookie", b"sessionid=abc"),
                                         middleware=ViewerAuthMiddleware)
    assert handshake_agent(scope) == (None, "TOKEN_INVALID")  # the token still decides the session route
    assert scope["cookies"] == {"sessionid": "abc"} and "user" in scope


async def test_viewer_auth_gives_a_handshake_without_a_token_the_session_user():
    scope = await scope_after_middleware((b"cookie", b"sessionid=abc"), middleware=ViewerAuthMiddleware)
    assert handshake_agent(scope) == (None, None)
    assert scope["cookies"] == {"sessionid": "abc"} and not scope["user"].is_authenticated
