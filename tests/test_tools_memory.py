"""Agent memory in-process: scopes, TTL (checked without waiting), overwrite=False, limits, isolation."""

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from realtime import memory, operations
from realtime.errors import OperationError
from realtime.models import MemoryEntry

pytestmark = pytest.mark.django_db


def code_of(call, *args, **kwargs):
    with pytest.raises(OperationError) as raised:
        call(*args, **kwargs)
    return raised.value.code


def test_expired_entries_are_never_returned_and_are_deleted():
    now = timezone.now()
    memory.set_memory("ada", "soon", "gone", expires_in=60, now=now)
    memory.set_memory("ada", "later", "kept", expires_in=3600, now=now)
    memory.set_memory("bob", "soon", "bob's", expires_in=60, now=now)
    assert memory.get_memory("ada", "soon", now=now + timedelta(seconds=59)).value == "gone"

    after = now + timedelta(seconds=61)
    assert code_of(memory.get_memory, "ada", "soon", now=after) == "MEMORY_NOT_FOUND"
    assert not MemoryEntry.objects.filter(agent_id="ada", key="soon").exists()
    assert MemoryEntry.objects.filter(agent_id="bob", key="soon").exists()  # a read cleans only the reader's
    assert [e["key"] for e in memory.list_memory("bob", now=after)[0]] == []
    assert [e["key"] for e in memory.list_memory("ada", now=after)[0]] == ["later"]

    memory.set_memory("carol", "any", 1, now=after)  # every write purges whatever has expired
    assert not MemoryEntry.objects.filter(agent_id="bob").exists()


def test_overwrite_false_refuses_while_the_value_lives_and_not_after():
    now = timezone.now()
    memory.set_memory("ada", "k", "first", expires_in=10, now=now)
    assert code_of(memory.set_memory, "ada", "k", "second", overwrite=False, now=now) == "MEMORY_KEY_EXISTS"
    assert memory.get_memory("ada", "k", now=now).value == "first"
    memory.set_memory("ada", "k", "second", overwrite=False, now=now + timedelta(seconds=11))
    assert memory.get_memory("ada", "k", now=now + timedelta(seconds=11)).value == "second"
    memory.set_memory("ada", "k", "third", now=now + timedelta(seconds=12))
    assert MemoryEntry.objects.filter(agent_id="ada", key="k").count() == 1


def test_global_and_session_scopes_are_separate():
    session = operations.create_session("scopes", "ada")
    memory.set_memory("ada", "k", "global")
    memory.set_memory("ada", "k", "scoped", session_id=session.id)
    assert memory.get_memory("ada", "k").value == "global"
    assert memory.get_memory("ada", "k", session_id=session.id).value == "scoped"
    assert code_of(memory.set_memory, "ada", "k", 1, session_id="session_" + "f" * 16) == "SESSION_NOT_FOUND"
    assert code_of(memory.get_memory, "ada", "k", session_id="bad") == "INVALID_SESSION_ID"
    assert {e["scope"] for e in memory.list_memory("ada", session_id="all")[0]} == {"global", "session"}
    mine = memory.agent_memory("ada")
    assert mine["global"]["k"]["value"] == "global" and mine["sessions"][session.id]["k"]["value"] == "scoped"
    assert memory.agent_memory("bob") == {"agent_id": "bob", "global": {}, "sessions": {}, "has_more": False}


@pytest.mark.parametrize("value", [None, 0, False, "", [], {}, {"nested": [1, {"deep": None}]}, 1.5])
def test_any_json_value_round_trips(value):
    memory.set_memory("ada", "v", value)
    assert memory.get_memory("ada", "v").value == value


@pytest.mark.parametrize("key", ["", " ", "has space", "tab\there", "-lead", "k" * 256, "naïve", "a\nb", None, 5])
def test_bad_keys_are_refused(key):
    assert code_of(memory.set_memory, "ada", key, 1) == "INVALID_KEY"
    assert not MemoryEntry.objects.exists()


def test_limits_are_enforced():
    with override_settings(SCS_MAX_MEMORY_VALUE_BYTES=100, SCS_MAX_MEMORY_TTL=60):
        assert code_of(memory.set_memory, "ada", "k", "x" * 101) == "VALUE_TOO_LARGE"
        assert code_of(memory.set_memory, "ada", "k", 1, expires_in=61) == "INVALID_TTL"
        assert code_of(memory.set_memory, "ada", "k", 1, expires_in=-1) == "INVALID_TTL"
        assert code_of(memory.set_memory, "ada", "k", float("nan")) == "INVALID_VALUE"
        assert code_of(memory.set_memory, "ada", "k", 1, metadata=[1]) == "INVALID_METADATA"
    assert not MemoryEntry.objects.exists()


def test_prefix_is_literal_and_limit_applies():
    for key in ("task_1", "task_2", "taskX", "other"):
        memory.set_memory("ada", key, 1)
    assert sorted(e["key"] for e in memory.list_memory("ada", prefix="task_")[0]) == ["task_1", "task_2"]
    assert len(memory.list_memory("ada", limit=2)[0]) == 2
