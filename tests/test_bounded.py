"""Bounded work in-process: the read budget, the search limits and cache, threads, offsets, quotas, audit pruning."""

import random
import string
import time
from datetime import timedelta

import pytest
from django.utils import timezone
from rapidfuzz import fuzz, process, utils

from realtime import audit, memory, operations, reads, search
from realtime.errors import OperationError
from realtime.models import AuditEvent
from realtime.visibility import Viewer

pytestmark = pytest.mark.django_db

ALICE = Viewer.for_agent("alice", "claude", ["read", "write"])


def code_of(call, *args, **kwargs):
    with pytest.raises(OperationError) as raised:
        call(*args, **kwargs)
    return raised.value.code


def add(session, content, **kwargs):
    return operations.add_message(session.id, sender="alice", sender_type="claude", content=content, **kwargs)


@pytest.fixture
def session():
    return operations.create_session("bounded", "alice")


# The read budget


def sized_session(session, sizes):
    for n, size in enumerate(sizes):
        add(session, f"{n:04d}" + "x" * (size - 4))
    return session


def test_pages_stop_at_the_budget_and_continue_without_loss_or_repeat(session, settings):
    settings.SCS_MAX_READ_BYTES = 5_000
    rng = random.Random(3)
    sized_session(session, [rng.choice([50, 400, 1_500, 3_000, 9_000]) for _ in range(40)])
    seen, since, pages = [], None, 0
    while True:
        page, has_more = operations.list_messages(ALICE, session.id, limit=1000, since_seq=since)
        pages += 1
        assert page, "every page holds at least one message"
        sizes = [len(m.content) + len(str(m.metadata)) + reads.ROW_OVERHEAD for m in page]
        assert len(page) == 1 or sum(sizes) <= settings.SCS_MAX_READ_BYTES
        seen += [m.seq for m in page]
        if not has_more:
            break
        since = page[-1].seq
    assert seen == list(range(1, 41)) and pages > 5


def test_a_message_larger_than_the_budget_comes_alone(session, settings):
    settings.SCS_MAX_READ_BYTES = 1_000
    sized_session(session, [5_000, 10, 10])
    page, has_more = operations.list_messages(ALICE, session.id)
    assert [m.seq for m in page] == [1] and has_more
    page, has_more = operations.list_messages(ALICE, session.id, since_seq=1)
    assert [m.seq for m in page] == [2, 3] and not has_more


def test_count_limit_still_says_has_more(session):
    sized_session(session, [10] * 5)
    page, has_more = operations.list_messages(ALICE, session.id, limit=5)
    assert len(page) == 5 and not has_more
    page, has_more = operations.list_messages(ALICE, session.id, limit=4)
    assert len(page) == 4 and has_more


def test_sender_and_timerange_reads_follow_the_budget(session, settings):
    settings.SCS_MAX_READ_BYTES = 3_000
    sized_session(session, [1_000] * 9)
    seen, before = [], None
    while True:
        page, has_more = search.messages_by_sender(ALICE, session.id, "alice", limit=100, before_seq=before)
        assert 1 <= len(page) <= 2
        seen += [m.seq for m in page]
        if not has_more:
            break
        before = page[-1].seq
    assert seen == list(range(9, 0, -1))
    start, end = "2000-01-01", "2999-01-01"
    seen, since = [], None
    while True:
        page, has_more = search.messages_in_timerange(ALICE, session.id, start, end, limit=100, since_seq=since)
        seen += [m.seq for m in page]
        if not has_more:
            break
        since = page[-1].seq
    assert seen == list(range(1, 10))


def test_rows_past_the_budget_are_not_loaded(session, settings, django_assert_num_queries):
    settings.SCS_MAX_READ_BYTES = 2_000
    sized_session(session, [1_500] * 20)
    queryset = operations.visible_messages(ALICE, session.id)
    with django_assert_num_queries(2):  # sizes, then the rows that fit
        page, has_more = reads.page(queryset, 1000)
    assert len(page) == 1 and has_more


def test_memory_reads_follow_the_budget(settings):
    settings.SCS_MAX_READ_BYTES = 3_000
    for n in range(5):
        memory.set_memory("ada", f"k{n}", "v" * 1_000)
    mine = memory.agent_memory("ada")
    assert 1 <= len(mine["global"]) < 5 and mine["has_more"]
    records, has_more = memory.list_memory("ada", limit=3)
    assert len(records) == 3 and has_more and all(r["value_size"] >= 1_000 for r in records)


# Search limits


def test_search_ranks_as_process_extract_did(session):
    rng = random.Random(5)
    words = "heron kingfisher egret ibis stork crane plover heron-ish".split()
    for _ in range(300):
        add(session, " ".join(rng.choices(words, k=rng.randint(1, 12))))
    queryset = operations.visible_messages(ALICE, session.id).order_by("-seq")
    texts = [utils.default_process(f"alice {m.content}") for m in queryset]
    for query, threshold in (("heron", 60), ("kingfsher egret", 0), ("plover crane ibis", 70)):
        expected = process.extract(utils.default_process(query), texts, scorer=fuzz.partial_ratio, processor=None,
                                   limit=10, score_cutoff=threshold)
        assert search._ranked(utils.default_process(query), texts, threshold, 10) == [
            (index, score) for _, score, index in expected
        ]


def test_search_stops_at_the_work_budget_newest_first(session, settings):
    for n in range(10):
        add(session, f"egret {n} " + "y" * 990)
    settings.SCS_SEARCH_MAX_WORK = 5 * 3_100  # a 5-character query may scan 3,100 characters: three messages
    result = search.search_messages(ALICE, session.id, "egret", threshold=0, limit=100)
    assert result["truncated"] and result["scanned"] == 3
    assert [r["message"]["seq"] for r in result["results"]] == [10, 9, 8]
    settings.SCS_SEARCH_MAX_WORK = 10**12
    settings.SCS_SEARCH_MAX_CHARS = 2_500
    result = search.search_messages(ALICE, session.id, "egret", threshold=0, limit=100)
    assert result["truncated"] and result["scanned"] == 2


def test_search_results_follow_the_read_budget(session, settings):
    for n in range(6):
        add(session, f"egret {n} " + "z" * 2_000)
    settings.SCS_MAX_READ_BYTES = 5_000
    result = search.search_messages(ALICE, session.id, "egret", threshold=0, limit=100)
    assert len(result["results"]) == 2 and result["has_more"] and not result["truncated"]


def test_long_queries_are_refused(session, settings):
    settings.SCS_SEARCH_MAX_QUERY = 10
    assert code_of(search.search_messages, ALICE, session.id, "a" * 11) == "QUERY_TOO_LONG"


def test_a_long_query_previews_around_its_start_quickly():
    rng = random.Random(9)
    query = "".join(rng.choices(string.ascii_lowercase, k=1_000))
    content = "".join(rng.choices(string.ascii_lowercase + " ", k=100_000))
    content = content[:41_000] + query + content[41_000:]
    started = time.perf_counter()
    text = search.preview(content, query)
    assert time.perf_counter() - started < 0.2  # the whole query as the needle takes ~0.4 s here
    assert query[:60] in text


def test_cache_keeps_no_entry_larger_than_its_cap(settings):
    cache = search.CandidateCache()
    settings.SCS_SEARCH_CACHE_CHARS = 100

    def entry(chars):
        return search.Candidates(1, 0.0, [1], ["x" * chars], chars, True)

    cache.put("big", entry(101))
    assert cache.get("big") is None and cache.chars == 0
    for key in "abcd":
        cache.put(key, entry(40))
    assert cache.chars <= 100 and len(cache) == 2 and cache.get("d") is not None


# Threads, offsets, quotas, retention


def test_thread_is_one_query(session, django_assert_max_num_queries):
    root = add(session, "root")
    parent, branch = root, []
    for depth in range(30):
        parent = add(session, f"reply {depth}", parent_message_id=parent.id)
        branch.append(parent.seq)
    add(session, "elsewhere")
    with django_assert_max_num_queries(3):  # the session, the sizes (thread included), the rows
        page, _ = operations.list_messages(ALICE, session.id, thread_id=root.id)
    assert [m.seq for m in page] == [root.seq, *branch]
    page, _ = operations.list_messages(ALICE, session.id, thread_id=parent.id)
    assert [m.seq for m in page] == [parent.seq]


def test_offset_is_capped(session):
    assert operations.list_messages(ALICE, session.id, offset=10_000) == ([], False)
    assert code_of(operations.list_messages, ALICE, session.id, offset=10_001) == "OFFSET_TOO_LARGE"


def test_memory_entries_are_capped(settings):
    settings.SCS_MAX_MEMORY_ENTRIES = 3
    now = timezone.now()
    memory.set_memory("ada", "short", 1, expires_in=60, now=now)
    memory.set_memory("ada", "a", 1, now=now)
    memory.set_memory("ada", "b", 1, now=now)
    assert code_of(memory.set_memory, "ada", "c", 1, now=now) == "MEMORY_FULL"
    memory.set_memory("ada", "a", 2, now=now)  # overwriting needs no room
    memory.set_memory("bob", "c", 1, now=now)  # another agent has its own
    memory.set_memory("ada", "c", 1, now=now + timedelta(seconds=61))  # the expired entry no longer counts
    assert code_of(memory.set_memory, "ada", "d", 1, now=now + timedelta(seconds=61)) == "MEMORY_FULL"


def test_sessions_per_hour_are_capped(settings):
    settings.SCS_MAX_SESSIONS_PER_HOUR = 2
    operations.create_session("one", "carol")
    operations.create_session("two", "carol")
    assert code_of(operations.create_session, "three", "carol") == "SESSION_QUOTA_EXCEEDED"
    operations.create_session("mine", "dave")
    AuditEvent.objects.filter(agent_id="carol").update(timestamp=timezone.now() - timedelta(minutes=61))
    operations.create_session("three", "carol")


def test_audit_events_past_retention_are_pruned_at_most_hourly(settings, monkeypatch):
    settings.SCS_AUDIT_RETENTION_DAYS = 30
    monkeypatch.setattr(audit, "_pruned_at", None)
    audit.record("old", "ada")
    audit.record("recent", "ada")
    AuditEvent.objects.filter(event_type="old").update(timestamp=timezone.now() - timedelta(days=31))
    AuditEvent.objects.filter(event_type="recent").update(timestamp=timezone.now() - timedelta(days=29))
    monkeypatch.setattr(audit, "_pruned_at", None)
    audit.record("trigger", "ada")
    assert set(AuditEvent.objects.values_list("event_type", flat=True)) == {"recent", "trigger"}
    audit.record("old", "ada")
    AuditEvent.objects.filter(event_type="old").update(timestamp=timezone.now() - timedelta(days=31))
    audit.record("again", "ada")  # within the hour: no second prune
    assert AuditEvent.objects.filter(event_type="old").exists()


def test_a_full_prune_batch_leaves_the_next_event_to_continue(settings, monkeypatch):
    monkeypatch.setattr(audit, "PRUNE_BATCH", 2)
    monkeypatch.setattr(audit, "_pruned_at", None)
    for _ in range(5):
        audit.record("old")
    AuditEvent.objects.update(timestamp=timezone.now() - timedelta(days=365))
    monkeypatch.setattr(audit, "_pruned_at", None)
    audit.record("a")
    audit.record("b")
    assert AuditEvent.objects.filter(event_type="old").count() == 1
