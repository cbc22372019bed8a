"""Searching a session's messages: fuzzy text, by sender, by time range.

Every search starts from ``operations.visible_messages``, so a viewer only ever
finds messages the one visibility rule lets it read. The fuzzy search fetches
the candidates in one query as plain tuples and ranks them with rapidfuzz's
``process.extract`` (C++), so no model instance is built per message; the
prepared text is kept per process and extended with new messages only.
"""

import collections
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db.models import TextField
from django.db.models.functions import Cast
from rapidfuzz import fuzz, process, utils

from realtime import conf, operations
from realtime.envelope import message_record
from realtime.errors import OperationError
from realtime.models import Visibility
from realtime.visibility import Viewer

SCOPES = ("all", "public", "private")
PREVIEW_CHARS = 160


def _scoped(viewer: Viewer, session_id, scope):
    queryset = operations.visible_messages(viewer, session_id)
    if scope == "public":
        return queryset.filter(visibility=Visibility.PUBLIC)
    if scope == "private":  # your own private messages
        return queryset.filter(visibility=Visibility.PRIVATE, sender=viewer.id)
    if scope != "all":
        raise OperationError(
            "INVALID_SCOPE", f"search_scope must be one of {', '.join(SCOPES)}",
            "Use 'all' for every message you may read.",
        )
    return queryset


def relevance(score):
    return "high" if score >= 80 else "medium" if score >= 60 else "low"


def preview(content, query):
    """The part of ``content`` around the best match for ``query``, at most ~PREVIEW_CHARS long."""
    if len(content) <= PREVIEW_CHARS:
        return content
    alignment = fuzz.partial_ratio_alignment(query.lower(), content.lower())
    start = 0
    if alignment is not None and alignment.score > 0:
        middle = (alignment.dest_start + alignment.dest_end) // 2
        start = max(0, min(middle - PREVIEW_CHARS // 2, len(content) - PREVIEW_CHARS))
    text = content[start : start + PREVIEW_CHARS]
    return ("…" if start > 0 else "") + text + ("…" if start + PREVIEW_CHARS < len(content) else "")


class CandidateCache:
    """Per process: the searchable text of each (session, viewer, scope) seen recently.

    An entry is extended with the messages stored since (``seq`` above its
    ``last_seq``) and rebuilt after ``max_age`` seconds, so edits made in the
    admin are searched within that time. Matches are re-read through the
    visibility rule before they are returned, so a stale entry never shows a
    message its viewer may no longer read.
    """

    def __init__(self, max_chars=64_000_000, max_age=30.0, max_entries=2_000):
        self.max_chars = max_chars
        self.max_entries = max_entries
        self.max_age = max_age
        self._entries = collections.OrderedDict()
        self._chars = 0
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def put(self, key, entry):
        with self._lock:
            old = self._entries.pop(key, None)
            self._chars -= old.chars if old else 0
            self._entries[key] = entry
            self._chars += entry.chars
            while (self._chars > self.max_chars or len(self._entries) > self.max_entries) and len(self._entries) > 1:
                _, evicted = self._entries.popitem(last=False)
                self._chars -= evicted.chars

    def clear(self):
        with self._lock:
            self._entries.clear()
            self._chars = 0


@dataclass(frozen=True)
class Candidates:
    last_seq: int
    built: float
    ids: list
    texts: list  # sender, content and metadata, through rapidfuzz's default_process
    chars: int


candidate_cache = CandidateCache()


def _fetch(queryset, search_metadata):
    """``(ids, texts)`` of ``queryset``'s rows, in its order, as plain lists (one query)."""
    process_text = utils.default_process
    if search_metadata:
        rows = list(queryset.annotate(meta=Cast("metadata", TextField()))
                    .values_list("pk", "sender", "content", "meta"))
        texts = [process_text(f"{sender} {content} {meta}" if meta and meta != "{}" else f"{sender} {content}")
                 for _, sender, content, meta in rows]
    else:
        rows = list(queryset.values_list("pk", "sender", "content"))
        texts = [process_text(f"{sender} {content}") for _, sender, content in rows]
    return [row[0] for row in rows], texts


def _candidates(viewer, session, queryset, scope, search_metadata):
    key = (session.id, viewer.kind, viewer.id, viewer.agent_type, viewer.is_admin, scope, bool(search_metadata))
    max_scan = conf.get("SCS_SEARCH_MAX_SCAN")
    now = time.monotonic()
    cached = candidate_cache.get(key)
    if cached is not None and cached.last_seq <= session.last_seq and now - cached.built < candidate_cache.max_age:
        if cached.last_seq == session.last_seq:
            return cached
        ids, texts = _fetch(queryset.filter(seq__gt=cached.last_seq, seq__lte=session.last_seq), search_metadata)
        ids, texts, built = (ids + cached.ids)[: max_scan + 1], (texts + cached.texts)[: max_scan + 1], cached.built
    else:
        ids, texts = _fetch(queryset.filter(seq__lte=session.last_seq)[: max_scan + 1], search_metadata)
        built = now
    entry = Candidates(session.last_seq, built, ids, texts, sum(map(len, texts)))
    candidate_cache.put(key, entry)
    return entry


def search_messages(viewer: Viewer, session_id, query, *, threshold=60.0, limit=10, search_metadata=True,
                    scope="all"):
    """Visible messages of the session ranked by fuzzy similarity to ``query`` (best first).

    Returns a dict: ``results`` (each ``{"message", "score", "match_preview",
    "relevance"}``), ``scanned`` and ``truncated`` (more candidates than
    ``SCS_SEARCH_MAX_SCAN`` were visible; only the newest were searched).
    """
    started = time.perf_counter()
    processed_query = utils.default_process(query) if isinstance(query, str) else ""
    if not processed_query:
        raise OperationError(
            "INVALID_QUERY", "query must contain at least one letter or digit", "Search for a word or phrase.",
        )
    if not 0 <= threshold <= 100:
        raise OperationError("INVALID_ARGUMENT", "fuzzy_threshold must be between 0 and 100", "60 is a good default.")
    session = operations.get_session(session_id)
    queryset = _scoped(viewer, session.id, scope).order_by("-seq")  # ties rank the newest first
    candidates = _candidates(viewer, session, queryset, scope, search_metadata)
    max_scan = conf.get("SCS_SEARCH_MAX_SCAN")
    texts = candidates.texts[:max_scan]
    matches = process.extract(processed_query, texts, scorer=fuzz.partial_ratio, processor=None, limit=limit,
                              score_cutoff=threshold)
    # Read the matches back through the visibility rule: the candidates may be a few seconds old.
    by_id = queryset.in_bulk([candidates.ids[index] for _, _, index in matches])
    results = []
    for _, score, index in matches:
        message = by_id.get(candidates.ids[index])
        if message is None:  # deleted, or no longer visible to this viewer
            continue
        results.append({
            "message": message_record(message),
            "score": round(score, 2),
            "match_preview": preview(message.content, query),
            "relevance": relevance(score),
        })
    return {
        "results": results,
        "scanned": len(texts),
        "truncated": len(candidates.texts) > max_scan,
        "search_time_ms": round((time.perf_counter() - started) * 1000, 2),
    }


def messages_by_sender(viewer: Viewer, session_id, sender, *, limit=20):
    """The newest ``limit`` visible messages from ``sender``, newest first."""
    operations.get_session(session_id)
    return list(_scoped(viewer, session_id, "all").filter(sender=sender).order_by("-seq")[:limit])


def parse_time(value, name):
    """An aware datetime from an ISO 8601 string (no zone means UTC), else INVALID_DATETIME."""
    try:
        parsed = datetime.fromisoformat(value.strip()) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None:
        raise OperationError(
            "INVALID_DATETIME", f"{name} is not an ISO 8601 date-time",
            "Use a form like 2026-05-01T14:30:00Z (a time without a zone is read as UTC).",
        )
    parsed = parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+05:00 has no UTC equivalent
        raise OperationError(
            "INVALID_DATETIME", f"{name} is out of range", "Use a date-time between the years 1 and 9999 in UTC."
        ) from None


def messages_in_timerange(viewer: Viewer, session_id, start_time, end_time, *, limit=50):
    """Visible messages with ``start <= timestamp <= end``, oldest first; returns ``(messages, has_more)``."""
    start, end = parse_time(start_time, "start_time"), parse_time(end_time, "end_time")
    if start > end:
        raise OperationError(
            "INVALID_TIME_RANGE", "start_time is after end_time", "Swap them: start_time must come first.",
        )
    operations.get_session(session_id)
    queryset = _scoped(viewer, session_id, "all").filter(timestamp__gte=start, timestamp__lte=end).order_by("seq")
    page = list(queryset[: limit + 1])
    return page[:limit], len(page) > limit
