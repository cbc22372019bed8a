"""Agents' private memory: JSON values under keys, global or scoped to a session, with a TTL.

Every function takes the owning ``agent_id`` and only ever touches that agent's
rows, so one agent can never read or list another's memory. Expired entries are
never returned; they are deleted when a write happens and whenever a read meets
one. ``now`` can be passed to make expiry checkable without waiting.

Every write and delete is published after commit (``announce``), for the staff pages
that show memory live (``realtime.live.memory``); an entry that lapses is not: pages
remove it at its ``expires_at``.
"""

import functools
import json
import re
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import JSONField, Q, TextField, Value
from django.db.models.functions import Cast, Length
from django.utils import timezone

from realtime import conf, operations, publisher, reads
from realtime.envelope import memory_event
from realtime.errors import ErrorCode, OperationError
from realtime.models import MemoryEntry
from realtime.timestamps import isoformat

KEY_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.:/@+=-]{0,254}$"
KEY_RE = re.compile(KEY_PATTERN)
KEY_HINT = ("Keys are 1-255 characters: letters, digits and _ . : / @ + = - "
            "(no spaces), starting with a letter, digit or _.")
ALL_SCOPES = "all"
SET, DELETE = "set", "delete"


def check_key(key):
    if not isinstance(key, str) or not KEY_RE.fullmatch(key):
        raise OperationError(ErrorCode.INVALID_KEY, "key is not a valid memory key", KEY_HINT)


def _encoded_size(value):
    try:
        return len(json.dumps(value, separators=(",", ":"), allow_nan=False).encode())
    except (TypeError, ValueError):
        raise OperationError(ErrorCode.INVALID_VALUE, "value is not a JSON value", "Store JSON data.") from None


def _unexpired(now):
    return Q(expires_at__isnull=True) | Q(expires_at__gt=now)


def _scope_q(session_id):
    return Q(session__isnull=True) if session_id is None else Q(session_id=session_id)


def purge_expired(now=None, agent_id=None):
    """Delete expired entries (of one agent, or all); returns how many."""
    expired = MemoryEntry.objects.filter(expires_at__lte=now or timezone.now())
    if agent_id is not None:
        expired = expired.filter(agent_id=agent_id)
    with operations.sqlite_writer_turn():
        return expired.delete()[0]


def entry_fields(entry):
    """An entry's key, scope and times: what every memory answer says of it."""
    return {
        "key": entry.key,
        "scope": "session" if entry.session_id else "global",
        "session_id": entry.session_id,
        "created_at": isoformat(entry.created_at),
        "updated_at": isoformat(entry.updated_at),
        "expires_at": isoformat(entry.expires_at),
    }


def entry_record(entry):
    return {**entry_fields(entry), "value": entry.value, "metadata": entry.metadata}


def check_room(agent_id, key, session_id):
    """MEMORY_FULL when ``agent_id`` holds ``SCS_MAX_MEMORY_ENTRIES`` entries (expired ones were purged first)."""
    cap = conf.get("SCS_MAX_MEMORY_ENTRIES")
    held = MemoryEntry.objects.filter(agent_id=agent_id)
    if held.count() >= cap and not held.filter(_scope_q(session_id), key=key).exists():
        raise OperationError(
            ErrorCode.MEMORY_FULL, f"you hold {cap} memory entries, the most allowed",
            "Delete or overwrite entries you no longer need, or store them with expires_in so they lapse.",
        )


def set_memory(agent_id, key, value, *, session_id=None, expires_in=None, metadata=None, overwrite=True,
               now=None):
    """Store ``value`` under ``key`` for ``agent_id``; returns the MemoryEntry.

    ``expires_in`` is a TTL in seconds (None or 0: never expires). With
    ``overwrite=False`` an existing, unexpired entry is left alone and
    MEMORY_KEY_EXISTS is raised.
    """
    check_key(key)
    size_limit = conf.get("SCS_MAX_MEMORY_VALUE_BYTES")
    if _encoded_size(value) > size_limit:
        raise OperationError(
            ErrorCode.VALUE_TOO_LARGE, f"value is larger than {size_limit} bytes once JSON-encoded",
            "Store less, or split it over several keys.",
        )
    metadata = operations.check_metadata(metadata)
    max_ttl = conf.get("SCS_MAX_MEMORY_TTL")
    if expires_in is not None and (isinstance(expires_in, bool) or not isinstance(expires_in, int)
                                   or not 0 <= expires_in <= max_ttl):
        raise OperationError(
            ErrorCode.INVALID_TTL, f"expires_in must be a whole number of seconds from 0 to {max_ttl}",
            "Leave it out (or 0) for an entry that never expires.",
        )
    if session_id is not None:
        operations.get_session(session_id)  # INVALID_SESSION_ID / SESSION_NOT_FOUND
    now = now or timezone.now()
    expires_at = now + timedelta(seconds=expires_in) if expires_in else None
    stored = Value(None, JSONField()) if value is None else value  # JSON null, not SQL NULL
    fields = {"value": stored, "metadata": metadata, "expires_at": expires_at, "updated_at": now}
    scope = MemoryEntry.objects.filter(_scope_q(session_id), agent_id=agent_id, key=key)
    with operations.sqlite_writer_turn(), transaction.atomic():
        purge_expired(now)
        if not (overwrite and scope.update(**fields)):
            _create(scope, fields, agent_id=agent_id, key=key, session_id=session_id, overwrite=overwrite)
        entry = scope.get()
        announce(SET, entry)
    return entry


def _create(scope, fields, *, agent_id, key, session_id, overwrite):
    check_room(agent_id, key, session_id)
    try:
        with transaction.atomic():
            MemoryEntry.objects.create(agent_id=agent_id, key=key, session_id=session_id, **fields)
    except IntegrityError:
        if not scope.exists():
            raise  # not a concurrent create of the same key: a real error
        if not overwrite:
            raise OperationError(
                ErrorCode.MEMORY_KEY_EXISTS, f"memory key {key!r} already holds a value",
                "Pass overwrite=true to replace it, or choose another key.",
            ) from None
        scope.update(**fields)  # created concurrently: last writer wins


def announce(action, entry):
    """Publish ``action`` on ``entry`` once the transaction commits (staff pages show it live)."""
    transaction.on_commit(functools.partial(publisher.publish_memory, memory_event(action, entry)), robust=True)


def delete_memory(agent_id, key, *, session_id=None, now=None):
    """Delete ``agent_id``'s unexpired entry under ``key`` in this scope; MEMORY_NOT_FOUND when there is none.

    Returns the deleted entry's fields (``entry_fields``).
    """
    with operations.sqlite_writer_turn(), transaction.atomic():
        entry = get_memory(agent_id, key, session_id=session_id, now=now)
        announce(DELETE, entry)  # its record is taken now, before delete() clears its pk
        fields = entry_fields(entry)
        entry.delete()
    return fields


def get_memory(agent_id, key, *, session_id=None, now=None):
    """``agent_id``'s unexpired entry under ``key`` in this scope, else MEMORY_NOT_FOUND."""
    check_key(key)
    if session_id is not None:
        operations.check_session_id(session_id)
    now = now or timezone.now()
    entry = MemoryEntry.objects.filter(_scope_q(session_id), agent_id=agent_id, key=key).first()
    if entry is not None and entry.expires_at is not None and entry.expires_at <= now:
        purge_expired(now, agent_id)
        entry = None
    if entry is None:
        raise OperationError(
            ErrorCode.MEMORY_NOT_FOUND, f"no memory under key {key!r} in this scope",
            "Check the key and session_id (global and session memory are separate); list_memory shows your keys.",
        )
    return entry


def list_memory(agent_id, *, session_id=None, prefix=None, limit=50, now=None):
    """``agent_id``'s unexpired entries, newest first: global (None), one session, or ``"all"``.

    Returns ``(records, has_more)``: dicts without the values (``value_size`` says how big each is), at
    most ``limit`` and within the read budget.
    """
    if session_id is not None and session_id != ALL_SCOPES:
        operations.get_session(session_id)
    if prefix is not None and not isinstance(prefix, str):
        raise OperationError(ErrorCode.INVALID_KEY, "prefix must be a string", KEY_HINT)
    now = now or timezone.now()
    entries = MemoryEntry.objects.filter(agent_id=agent_id)
    if entries.filter(expires_at__lte=now).exists():
        purge_expired(now, agent_id)
    entries = entries.filter(_unexpired(now))
    if session_id != ALL_SCOPES:
        entries = entries.filter(_scope_q(session_id))
    if prefix:
        entries = entries.filter(key__startswith=prefix)
    # Values are not loaded: their size is measured by the database (as stored, in characters).
    entries = entries.defer("value", "metadata").annotate(value_size=Length(Cast("value", TextField())))
    page, has_more = reads.page(entries.order_by("-updated_at", "key"), limit, size_of=("key",))
    return [{**entry_fields(entry), "value_size": entry.value_size} for entry in page], has_more


def agent_memory(agent_id, *, limit=200, now=None):
    """What ``agent_id`` remembers (unexpired), for the ``agent://{agent_id}/memory`` resource.

    At most ``limit`` entries and the read budget (``reads``); ``has_more`` says some were left out.
    """
    now = now or timezone.now()
    entries = MemoryEntry.objects.filter(_unexpired(now), agent_id=agent_id).order_by("session_id", "key")
    page, has_more = reads.page(entries, limit, size_of=("key", "value", "metadata"))
    global_entries, sessions = {}, {}
    for entry in page:
        target = global_entries if entry.session_id is None else sessions.setdefault(entry.session_id, {})
        target[entry.key] = entry_record(entry)
    return {"agent_id": agent_id, "global": global_entries, "sessions": sessions, "has_more": has_more}
