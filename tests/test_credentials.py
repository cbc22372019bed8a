"""The token rule checked one token at a time (every tool call) and in bulk (open connections) agrees."""

from datetime import timedelta

import pytest
from django.utils import timezone

from realtime import credentials, tokens
from realtime.models import AgentCredential

pytestmark = pytest.mark.django_db


def claims(agent_id, credential=""):
    token, _ = tokens.issue(agent_id, "claude", ["read"], credential=credential)
    return tokens.verify(token)


def test_one_at_a_time_and_in_bulk_refuse_the_same_tokens():
    kept, _ = credentials.issue("kept", "claude")
    revoked, _ = credentials.issue("revoked", "claude")
    expired, _ = credentials.issue("expired", "claude")
    credentials.issue("keyed-later", "claude")
    cases = {
        "good key token": claims("kept", kept.key_id),
        "shared-key token of an agent without a key": claims("nobody"),
        "retired token": claims("kept", kept.key_id),
        "token of a revoked key": claims("revoked", revoked.key_id),
        "token of an expired key": claims("expired", expired.key_id),
        "shared-key token of an agent that got a key": claims("keyed-later"),
        "token of an unknown key": claims("ghost", "000000000000"),
    }
    credentials.retire(cases["retired token"], "test")
    credentials.revoke(revoked.key_id)
    AgentCredential.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    one_by_one = {name for name, c in cases.items() if credentials.token_refusal(c)}
    in_bulk = {name for name, c in cases.items() if c in credentials.refused(set(cases.values()), chunk=2)}
    assert one_by_one == in_bulk == {
        "retired token", "token of a revoked key", "token of an expired key",
        "shared-key token of an agent that got a key", "token of an unknown key",
    }
