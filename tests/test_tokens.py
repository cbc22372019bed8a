"""``realtime.tokens.verify``: a genuine token's claims are kept; expiry and the secret are checked every time."""


import jwt
import pytest

from realtime import tokens
from realtime.errors import ErrorCode
from tests.helpers import signed_token


@pytest.fixture(autouse=True)
def fresh_cache():
    tokens._genuine.cache_clear()
    yield
    tokens._genuine.cache_clear()


@pytest.fixture
def decodes(monkeypatch):
    """How many times PyJWT decoded a token."""
    calls = []
    decode = jwt.decode
    monkeypatch.setattr(jwt, "decode", lambda *args, **kwargs: calls.append(1) or decode(*args, **kwargs))
    return calls


def code_of(token, **options):
    with pytest.raises(tokens.TokenError) as caught:
        tokens.verify(token, **options)
    return caught.value.code


def test_a_token_sent_again_is_not_decoded_again(decodes):
    token, issued = tokens.issue("agent-1", "claude", ["read", "write"])
    assert tokens.verify(token) == tokens.verify(token) == issued
    assert len(decodes) == 1


def test_a_kept_token_still_expires(monkeypatch):
    token, issued = tokens.issue("agent-1", "claude", ["read"], ttl=60)
    tokens.verify(token)
    monkeypatch.setattr(tokens.time, "time", lambda: issued.expires_at + 1)
    assert code_of(token) == ErrorCode.TOKEN_EXPIRED
    assert tokens.verify(token, leeway=5) == issued  # the refresh grace


def test_expiry_is_decided_as_pyjwt_decides_it(monkeypatch):
    token, issued = tokens.issue("agent-1", "claude", ["read"], ttl=60)
    monkeypatch.setattr(tokens.time, "time", lambda: issued.expires_at - 0.5)
    assert tokens.verify(token) == issued
    monkeypatch.setattr(tokens.time, "time", lambda: issued.expires_at)  # exp <= now: expired
    assert code_of(token) == ErrorCode.TOKEN_EXPIRED


def test_a_kept_token_is_refused_once_the_secret_changes(settings):
    token, _ = tokens.issue("agent-1", "claude", ["read"])
    tokens.verify(token)
    settings.SCS_JWT_SECRET = "another secret, rotated, 32 bytes or more"
    assert code_of(token) == ErrorCode.TOKEN_INVALID


def test_refused_tokens_are_not_kept(decodes):
    token, _ = tokens.issue("agent-1", "claude", ["read"])
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    for _ in range(3):
        assert code_of(forged) == ErrorCode.TOKEN_INVALID
    assert len(decodes) == 3 and tokens._genuine.cache_info().currsize == 0


def test_malformed_claims_are_refused_even_when_signed(settings):
    for bad in ({"permissions": "read"}, {"auth_time": "yesterday"}, {"cred": 7}, {"sub": 5}):
        assert code_of(signed_token(settings.SCS_JWT_SECRET, **bad)) == ErrorCode.TOKEN_INVALID, bad

