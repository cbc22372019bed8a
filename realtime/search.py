"""Searching a session's messages: fuzzy text, by sender, by time range.

Every search starts from ``operations.visible_messages``, so a viewer only ever
finds messages the one visibility rule lets it read. The fuzzy search fetches
the candidates as plain tuples (sizes first, so nothing past the scan limits is
loaded) and ranks them with rapidfuzz's ``process.cdist`` (C++, run without the
GIL: a long scan does not stall the sidecar's other requests); the prepared
text is kept per process and extended with new messages only. Every search is
bounded: the query's length, the characters scanned and the work (query length
x characters), newest messages first, with ``truncated`` when a limit ran out.
"""

import collections
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy
from django.db.models import TextField
from django.db.models.functions import Cast, Length
from rapidfuzz import fuzz, process, utils

from realtime import conf, operations, reads
from realtime.envelope import message_record
from realtime.errors import ErrorCode, OperationError
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
            ErrorCode.INVALID_SCOPE, f"search_scope must be one of {', '.join(SCOPES)}",
            "Use 'all' for every message you may read.",
        )
    return queryset


def relevance(score):
    return "high" if score >= 80 else "medium" if score >= 60 else "low"


# partial_ratio with a needle of up to 64 characters runs bit-parallel (~1-2 ms over 100,000 characters); a
# longer one scores every window and costs ~100x more, holding the GIL. A preview centres on the query's start.
PREVIEW_NEEDLE = 64


def preview(content, query):
    """The part of ``content`` around the best match for ``query`` (its first 64 characters), ~PREVIEW_CHARS long."""
    if len(content) <= PREVIEW_CHARS:
        return content
    alignment = fuzz.partial_ratio_alignment(query.lower()[:PREVIEW_NEEDLE], content.lower())
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
    message its viewer may no longer read. All entries together hold at most
    ``SCS_SEARCH_CACHE_CHARS`` characters; a larger entry is not kept.
    """

    def __init__(self, max_age=30.0, max_entries=2_000):
        self.max_entries = max_entries
        self.max_age = max_age
        self._entries = collections.OrderedDict()
        self._chars = 0
        self._lock = threading.Lock()

    @property
    def chars(self):
        return self._chars

    def __len__(self):
        return len(self._entries)

    def get(self, key):
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def put(self, key, entry):
        max_chars = conf.get("SCS_SEARCH_CACHE_CHARS")
        with self._lock:
            old = self._entries.pop(key, None)
            self._chars -= old.chars if old else 0
            if entry.chars > max_chars:
                return  # used for this search only
            self._entries[key] = entry
            self._chars += entry.chars
            while self._chars > max_chars or len(self._entries) > self.max_entries:
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
    ids: list  # newest first
    texts: list  # sender, content and metadata, through rapidfuzz's default_process
    chars: int
    complete: bool  # every visible message up to last_seq is here


candidate_cache = CandidateCache()


def _fetch(queryset, search_metadata):
    """``(ids, texts, complete)`` of ``queryset``'s newest rows within the scan limits (two queries).

    The first query reads only sizes, so rows past ``SCS_SEARCH_MAX_CHARS`` (or
    ``SCS_SEARCH_MAX_SCAN``) are never loaded.
    """
    max_scan, max_chars = conf.get("SCS_SEARCH_MAX_SCAN"), conf.get("SCS_SEARCH_MAX_CHARS")
    fields = ("sender", "content", "metadata") if search_metadata else ("sender", "content")
    length = Length(fields[0])
    for field in fields[1:]:
        length = length + Length(Cast(field, TextField()))
    sized, total = [], 0
    rows = queryset.annotate(text_size=length).values_list("seq", "text_size")[: max_scan + 1]
    # Streamed and left one row past the limits: measuring a row reads all of its text.
    for seq, size in rows.iterator(chunk_size=reads.SIZE_CHUNK):
        sized.append((seq, size))
        total += size
        if len(sized) > max_scan or (len(sized) > 1 and total > max_chars):
            break
    taken = reads.cut([size for _, size in sized], max_scan, max_chars)
    complete = taken == len(sized)
    if not taken:
        return [], [], complete
    queryset = queryset.filter(seq__gte=sized[taken - 1][0])
    process_text = utils.default_process
    if search_metadata:
        rows = list(queryset.annotate(meta=Cast("metadata", TextField()))
                    .values_list("pk", "sender", "content", "meta"))
        texts = [process_text(f"{sender} {content} {meta}" if meta and meta != "{}" else f"{sender} {content}")
                 for _, sender, content, meta in rows]
    else:
        rows = list(queryset.values_list("pk", "sender", "content"))
        texts = [process_text(f"{sender} {content}") for _, sender, content in rows]
    return [row[0] for row in rows], texts, complete


def _trimmed(ids, texts):
    """The newest of ``ids``/``texts`` within ``SCS_SEARCH_MAX_SCAN`` and ``SCS_SEARCH_MAX_CHARS``."""
    taken = reads.cut([len(text) for text in texts], conf.get("SCS_SEARCH_MAX_SCAN"),
                      conf.get("SCS_SEARCH_MAX_CHARS"))
    return ids[:taken], texts[:taken], taken == len(texts)


def _candidates(viewer, session, queryset, scope, search_metadata):
    key = (session.id, viewer.kind, viewer.id, viewer.agent_type, viewer.is_admin, scope, bool(search_metadata))
    now = time.monotonic()
    cached = candidate_cache.get(key)
    if cached is not None and cached.last_seq <= session.last_seq and now - cached.built < candidate_cache.max_age:
        if cached.last_seq == session.last_seq:
            return cached
        ids, texts, complete = _fetch(
            queryset.filter(seq__gt=cached.last_seq, seq__lte=session.last_seq), search_metadata
        )
        if complete:
            ids, texts, complete = _trimmed(ids + cached.ids, texts + cached.texts)
            complete = complete and cached.complete
        built = cached.built
    else:
        ids, texts, complete = _fetch(queryset.filter(seq__lte=session.last_seq), search_metadata)
        built = now
    entry = Candidates(session.last_seq, built, ids, texts, sum(map(len, texts)), complete)
    candidate_cache.put(key, entry)
    return entry


def _ranked(query, texts, threshold, limit):
    """Indexes of ``texts`` scoring at least ``threshold``, best first (ties: lower index first), with scores.

    The same ranking as ``process.extract``, but ``cdist`` scores without holding
    the GIL, so other requests of this process run while a long scan goes on.
    """
    if not texts:
        return []
    scores = process.cdist([query], texts, scorer=fuzz.partial_ratio, processor=None, score_cutoff=threshold,
                           workers=1, dtype=numpy.float64)[0]
    found = numpy.flatnonzero(scores >= threshold) if threshold > 0 else numpy.arange(len(texts))
    order = found[numpy.lexsort((found, -scores[found]))][:limit]
    return [(int(index), float(scores[index])) for index in order]


def search_messages(viewer: Viewer, session_id, query, *, threshold=60.0, limit=10, search_metadata=True,
                    scope="all"):
    """Visible messages of the session ranked by fuzzy similarity to ``query`` (best first).

    Returns a dict: ``results`` (each ``{"message", "score", "match_preview",
    "relevance"}``), ``scanned``, ``truncated`` (the scan limits ran out: only
    the newest messages were searched) and ``has_more`` (more matches than the
    read budget let through). The scan stops at ``SCS_SEARCH_MAX_SCAN``
    messages, ``SCS_SEARCH_MAX_CHARS`` characters, or ``SCS_SEARCH_MAX_WORK``
    (query length x characters), whichever comes first.
    """
    started = time.perf_counter()
    max_query = conf.get("SCS_SEARCH_MAX_QUERY")
    if isinstance(query, str) and len(query) > max_query:
        raise OperationError(
            ErrorCode.QUERY_TOO_LONG, f"query is longer than {max_query} characters",
            "Search for a few distinctive words.",
        )
    processed_query = utils.default_process(query) if isinstance(query, str) else ""
    if not processed_query:
        raise OperationError(
            ErrorCode.INVALID_QUERY, "query must contain at least one letter or digit", "Search for a word or phrase.",
        )
    if not 0 <= threshold <= 100:
        raise OperationError(ErrorCode.INVALID_ARGUMENT, "fuzzy_threshold must be between 0 and 100",
                             "60 is a good default.")
    session = operations.get_session(session_id)
    queryset = _scoped(viewer, session.id, scope).order_by("-seq")  # ties rank the newest first
    candidates = _candidates(viewer, session, queryset, scope, search_metadata)
    max_chars = min(conf.get("SCS_SEARCH_MAX_CHARS"), conf.get("SCS_SEARCH_MAX_WORK") // len(processed_query))
    scanned = reads.cut([len(text) for text in candidates.texts], conf.get("SCS_SEARCH_MAX_SCAN"), max_chars)
    matches = _ranked(processed_query, candidates.texts[:scanned], threshold, limit)
    # Read the matches back through the visibility rule (the candidates may be a few seconds old), as many
    # as the read budget allows.
    scores = {candidates.ids[index]: score for index, score in matches}
    messages, has_more = reads.pick(queryset, list(scores))
    results = [{
        "message": message_record(message),
        "score": round(scores[message.pk], 2),
        "match_preview": preview(message.content, query),
        "relevance": relevance(scores[message.pk]),
    } for message in messages]
    return {
        "results": results,
        "scanned": scanned,
        "truncated": scanned < len(candidates.texts) or not candidates.complete,
        "has_more": has_more,
        "search_time_ms": round((time.perf_counter() - started) * 1000, 2),
    }


def messages_by_sender(viewer: Viewer, session_id, sender, *, limit=20, before_seq=None):
    """The newest visible messages from ``sender`` (before ``before_seq``), newest first, within the read budget.

    Returns ``(messages, has_more)``.
    """
    operations.get_session(session_id)
    queryset = _scoped(viewer, session_id, "all").filter(sender=sender).order_by("-seq")
    if before_seq is not None:
        queryset = queryset.filter(seq__lt=before_seq)
    return reads.page(queryset, limit)


def parse_time(value, name):
    """An aware datetime from an ISO 8601 string (no zone means UTC), else INVALID_DATETIME."""
    try:
        parsed = datetime.fromisoformat(value.strip()) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None:
        raise OperationError(
            ErrorCode.INVALID_DATETIME, f"{name} is not an ISO 8601 date-time",
            "Use a form like 2026-05-01T14:30:00Z (a time without a zone is read as UTC).",
        )
    parsed = parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+05:00 has no UTC equivalent
        raise OperationError(
            ErrorCode.INVALID_DATETIME, f"{name} is out of range",
            "Use a date-time between the years 1 and 9999 in UTC.",
        ) from None


def messages_in_timerange(viewer: Viewer, session_id, start_time, end_time, *, limit=50, since_seq=None):
    """Visible messages with ``start <= timestamp <= end`` (after ``since_seq``), oldest first.

    Returns ``(messages, has_more)`` within the read budget.
    """
    start, end = parse_time(start_time, "start_time"), parse_time(end_time, "end_time")
    if start > end:
        raise OperationError(
            ErrorCode.INVALID_TIME_RANGE, "start_time is after end_time", "Swap them: start_time must come first.",
        )
    operations.get_session(session_id)
    queryset = _scoped(viewer, session_id, "all").filter(timestamp__gte=start, timestamp__lte=end).order_by("seq")
    if since_seq is not None:
        queryset = queryset.filter(seq__gt=since_seq)
    return reads.page(queryset, limit)
