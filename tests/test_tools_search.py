"""Search in-process: the visibility rule, previews, the candidate cache, time parsing."""

from datetime import UTC, datetime

import pytest

from realtime import operations, search
from realtime.errors import OperationError
from realtime.models import Message
from realtime.visibility import Viewer

pytestmark = pytest.mark.django_db

ALICE = Viewer.for_agent("alice", "claude", ["read", "write"])
BOB = Viewer.for_agent("bob", "claude", ["read", "write"])
GINA = Viewer.for_agent("gina", "gemini", ["read"])
ADMIN = Viewer.for_agent("root", "admin", ["read", "write", "admin"])


@pytest.fixture
def session():
    session = operations.create_session("search", "alice")
    for visibility in ("public", "private", "agent_only"):
        operations.add_message(session.id, sender="alice", sender_type="claude", content=f"heron {visibility}",
                               visibility=visibility)
    operations.add_message(session.id, sender="root", sender_type="admin", content="heron admin_only",
                           visibility="admin_only", may_write_admin_only=True)
    search.candidate_cache.clear()
    return session


def found(viewer, session, query="heron", **kwargs):
    results = search.search_messages(viewer, session.id, query, **kwargs)["results"]
    return sorted(r["message"]["content"] for r in results)


def test_search_follows_the_visibility_rule(session):
    assert found(ALICE, session) == ["heron agent_only", "heron private", "heron public"]
    assert found(BOB, session) == ["heron agent_only", "heron public"]
    assert found(GINA, session) == ["heron public"]
    assert found(ADMIN, session) == ["heron admin_only", "heron agent_only", "heron private", "heron public"]


def test_a_cached_candidate_that_became_invisible_is_not_returned(session):
    assert "heron public" in found(GINA, session)
    Message.objects.filter(content="heron public").update(visibility="private")  # e.g. an edit in the admin
    assert found(GINA, session) == []


def test_new_messages_extend_the_cached_candidates(session):
    assert found(GINA, session, "kingfisher") == []
    operations.add_message(session.id, sender="gina", sender_type="gemini", content="a kingfisher")
    assert found(GINA, session, "kingfisher") == ["a kingfisher"]


def test_scan_limit_searches_the_newest(session, settings):
    settings.SCS_SEARCH_MAX_SCAN = 2
    result = search.search_messages(ADMIN, session.id, "heron")
    assert result["scanned"] == 2 and result["truncated"] is True
    assert sorted(r["message"]["content"] for r in result["results"]) == ["heron admin_only", "heron agent_only"]


def test_preview_centres_on_the_match():
    content = "a" * 500 + " the needle is here " + "b" * 500
    text = search.preview(content, "needle")
    assert "needle" in text and text.startswith("…") and text.endswith("…") and len(text) <= search.PREVIEW_CHARS + 2
    assert search.preview("short", "x") == "short"


@pytest.mark.parametrize("query", ["", "   ", "?!.", None])
def test_queries_without_words_are_refused(session, query):
    with pytest.raises(OperationError) as raised:
        search.search_messages(ALICE, session.id, query)
    assert raised.value.code == "INVALID_QUERY"


@pytest.mark.parametrize(("value", "expected"), [
    ("2026-05-01T14:30:00Z", datetime(2026, 5, 1, 14, 30, tzinfo=UTC)),
    ("2026-05-01T16:30:00+02:00", datetime(2026, 5, 1, 14, 30, tzinfo=UTC)),
    ("2026-05-01", datetime(2026, 5, 1, tzinfo=UTC)),
])
def test_parse_time(value, expected):
    assert search.parse_time(value, "t") == expected


@pytest.mark.parametrize("value", ["yesterday", "2026-13-01", "", "1714570000", None, 5])
def test_unparseable_times_are_refused(value):
    with pytest.raises(OperationError) as raised:
        search.parse_time(value, "start_time")
    assert raised.value.code == "INVALID_DATETIME"


def test_reversed_range_is_refused(session):
    with pytest.raises(OperationError) as raised:
        search.messages_in_timerange(ALICE, session.id, "2026-01-02", "2026-01-01")
    assert raised.value.code == "INVALID_TIME_RANGE"
