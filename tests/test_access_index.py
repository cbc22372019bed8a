"""``realtime.live.access`` keeps agent connections by token: a check walks each token once and closes every
connection of a refused or expired one, and nothing of a closed connection stays behind."""

import time

import pytest

from realtime.live import access
from realtime.live.closecodes import CLOSE_UNAUTHORIZED
from realtime.tokens import AgentClaims

pytestmark = [pytest.mark.asyncio(loop_scope="function"), pytest.mark.django_db(transaction=True)]


class Connection:
    def __init__(self):
        self.closed = None

    def revoke(self, code):
        self.closed = code


def claims(token_id, expires_in=3600):
    return AgentClaims("ada", "claude", ("read",), int(time.time()) + expires_in, token_id)


@pytest.fixture(autouse=True)
def empty(monkeypatch):
    for name in ("_open", "_users", "_tokens"):
        monkeypatch.setattr(access, name, {})
    monkeypatch.setattr(access, "_task", None)


async def test_every_connection_of_a_refused_token_closes_and_only_those(monkeypatch):
    asked = []

    def refused(tokens):
        tokens = list(tokens)
        asked.append(sorted(c.token_id for c in tokens))
        return {c for c in tokens if c.token_id == "retired"}

    monkeypatch.setattr(access.credentials, "refused", refused)
    retired = [Connection() for _ in range(3)]
    kept = [Connection() for _ in range(2)]
    expired = Connection()
    for connection in retired:
        access._watch(connection, access.Entry("agent", claims("retired")))
    for connection in kept:
        access._watch(connection, access.Entry("agent", claims("kept")))
    access._watch(expired, access.Entry("agent", claims("old", expires_in=-1)))
    await access.check()
    assert asked == [["kept", "old", "retired"]]  # each token once, however many connections hold it
    assert [c.closed for c in retired] == [CLOSE_UNAUTHORIZED] * 3 and expired.closed == CLOSE_UNAUTHORIZED
    assert [c.closed for c in kept] == [None, None]
    assert set(access._tokens) == {"kept"} and set(access._open) == set(kept)


async def test_forgetting_the_last_connection_of_a_token_forgets_the_token():
    first, second = Connection(), Connection()
    access._watch(first, access.Entry("agent", claims("t")))
    access._watch(second, access.Entry("agent", claims("t")))
    access.forget(first)
    assert access._tokens["t"][1] == {second}
    access.forget(second)
    access.forget(second)  # twice is harmless
    assert access._tokens == {} and access._open == {}


async def test_a_connection_watched_again_is_indexed_once():
    connection = Connection()
    access._watch(connection, access.Entry("user", 7))
    access._watch(connection, access.Entry("agent", claims("t")))
    assert access._users == {} and set(access._tokens["t"][1]) == {connection}
    access.forget(connection)
    assert access._tokens == {} and access._users == {} and access._open == {}
