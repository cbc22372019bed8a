"""Agent tokens: signed JWTs carrying agent id, agent type and permissions."""

import functools
import time
import uuid
from dataclasses import dataclass

import jwt

from realtime import conf
from realtime.errors import ErrorCode

ALGORITHM = "HS256"
ISSUER = "shared-context-server"
PERMISSIONS = ("read", "write", "admin")
GENUINE_CACHE = 4096  # tokens whose signature and claims were checked lately, newest kept


class TokenError(Exception):
    """The token is missing, malformed, forged or expired; ``code`` says which."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class AgentClaims:
    agent_id: str
    agent_type: str
    permissions: tuple
    expires_at: int
    token_id: str
    credential: str = ""  # key id of the agent credential it was issued under; "" for the shared key
    auth_time: int = 0  # when the agent first authenticated; refreshing keeps it


def issue(agent_id, agent_type, permissions, ttl=None, *, credential="", auth_time=None):
    """Sign a token; returns ``(token, claims)``."""
    now = int(time.time())
    ttl = conf.get("SCS_TOKEN_TTL") if ttl is None else ttl
    claims = AgentClaims(agent_id, agent_type, tuple(permissions), now + ttl, uuid.uuid4().hex, credential,
                         now if auth_time is None else auth_time)
    payload = {
        "iss": ISSUER,
        "sub": agent_id,
        "agent_type": agent_type,
        "permissions": list(permissions),
        "iat": now,
        "exp": claims.expires_at,
        "jti": claims.token_id,
        "cred": claims.credential,
        "auth_time": claims.auth_time,
    }
    return jwt.encode(payload, conf.get("SCS_JWT_SECRET"), algorithm=ALGORITHM), claims


def verify(token, *, leeway=0):
    """Check signature, issuer and expiry (allowing ``leeway`` seconds past expiry)."""
    if not isinstance(token, str) or not token:
        raise TokenError(ErrorCode.AUTH_REQUIRED, "no token was given")
    claims = _genuine(conf.get("SCS_JWT_SECRET"), token)
    if claims.expires_at <= time.time() - leeway:  # as PyJWT decides it
        raise TokenError(ErrorCode.TOKEN_EXPIRED, "the token has expired")
    return claims


@functools.lru_cache(maxsize=GENUINE_CACHE)
def _genuine(secret, token):
    """The claims of a token signed with ``secret``, whatever its expiry; else TokenError.

    Kept for the tokens checked lately: an agent sends the same token with every call, and decoding it
    (the signature, base64, JSON) was 5 % of the sidecar's CPU per call. A refusal raises, so only
    genuine tokens are kept; expiry is checked on every call (``verify``), and revocation by the caller.
    """
    try:
        payload = jwt.decode(
            token, secret, algorithms=[ALGORITHM], issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "iss"], "verify_exp": False},
        )
    except jwt.InvalidTokenError:
        raise TokenError(ErrorCode.TOKEN_INVALID, "the token is malformed or its signature does not match") from None
    permissions = payload.get("permissions")
    agent_type = payload.get("agent_type")
    if not isinstance(permissions, list) or not isinstance(agent_type, str) or not isinstance(payload["sub"], str):
        raise TokenError(ErrorCode.TOKEN_INVALID, "the token's claims are malformed")
    credential, auth_time = payload.get("cred", ""), payload.get("auth_time", payload["iat"])
    if not isinstance(credential, str) or not _is_int(auth_time) or not _is_int(payload["exp"]):
        raise TokenError(ErrorCode.TOKEN_INVALID, "the token's claims are malformed")
    return AgentClaims(
        payload["sub"], agent_type, tuple(p for p in permissions if p in PERMISSIONS), payload["exp"],
        str(payload.get("jti", "")), credential, auth_time,
    )


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def verify_for_refresh(token):
    """Claims of a genuine token, even one expired up to ``SCS_TOKEN_REFRESH_GRACE`` seconds ago.

    A forged or malformed token is always refused (TOKEN_INVALID); one expired
    longer ago than the grace window is refused with TOKEN_EXPIRED.
    """
    try:
        return verify(token, leeway=conf.get("SCS_TOKEN_REFRESH_GRACE"))
    except TokenError as exc:
        if exc.code == ErrorCode.TOKEN_EXPIRED:
            raise TokenError(
                ErrorCode.TOKEN_EXPIRED, "the token expired too long ago to be refreshed"
            ) from None
        raise

