"""Open connections carry exactly the rights their owner has now, whichever process changed them.

Each Daphne process knows its own open connections: for a signed-in user, the
user's pk and a snapshot of the account fields its viewer was built from
(username, is_active, is_staff, password hash); for an agent, its token id and
credential key id. Every ``INTERVAL`` seconds, while any connection is open, the
process reads those back and closes the connections whose rights changed: users
with ``CLOSE_RECHECK`` (the page reconnects with its current rights, or is
refused), agents with ``CLOSE_UNAUTHORIZED``. This catches what no signal
announces: a queryset ``.update()``, ``manage.py shell`` or ``changepassword``, a
worker, another process on the in-memory channel layer. ``realtime.live.revocation``
stays the instant path for changes made through ``save()``, ``delete()`` and
sign-out in a process that shares the channel layer.

No window at connect: a connection registers here first, then builds its viewer
from a fresh database read (``authenticate_user`` / ``authenticate_agent``), so a
change committed after that read is caught by the next check.

Cost per process: nothing while no connection is open; otherwise, every
``INTERVAL``, one primary-key query per ``CHUNK`` open user connections and three
indexed queries (``credentials.refused``) per ``CHUNK`` distinct agent tokens.
1,000 open user connections cost 4 small queries a second; one check of them
took 47 ms on SQLite (a busy 2-core machine), so under 10% of one core. Agent
connections are kept by token as they open and close, so a check walks each
token once, not each connection: an agent commonly holds several.
"""

import asyncio
import logging
import time
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from channels.auth import get_user
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model

from realtime import credentials
from realtime.live.closecodes import CLOSE_RECHECK, CLOSE_UNAUTHORIZED

logger = logging.getLogger(__name__)

INTERVAL = 0.5  # seconds between two checks: with the query time, a change is seen within ~0.6 s
CHUNK = 500  # keys per query (SQLite allows 999 parameters)
LOG_EVERY = 60.0  # seconds between two logs of a failing check (e.g. the database is down)


@dataclass
class Entry:
    kind: str  # "user" or "agent"
    key: object  # user pk, or the token's claims
    snapshot: tuple = None  # users: the account fields the viewer was built from; None until read


_open = {}  # consumer -> Entry, this process's open connections
_users = {}  # consumer -> Entry, the users' among them
_tokens = {}  # token key (_token_key) -> (claims, {consumer, ...}), the agents' among them, by token
_task = None
_last_log = 0.0


def user_fields():
    """The account fields rights are built from, as far as the user model has them (custom models too)."""
    model = get_user_model()
    names = {field.attname for field in model._meta.concrete_fields}
    wanted = (model.USERNAME_FIELD, "is_active", "is_staff", "is_superuser", "password")
    return tuple(name for name in wanted if name in names)


def snapshot(user):
    return tuple(getattr(user, name) for name in user_fields())


def _watch(consumer, entry):
    global _task
    forget(consumer)
    _open[consumer] = entry
    if entry.kind == "user":
        _users[consumer] = entry
    else:
        _tokens.setdefault(_token_key(entry.key), (entry.key, set()))[1].add(consumer)
    if _task is None or _task.done() or _task.get_loop() is not asyncio.get_running_loop():
        _task = asyncio.create_task(_check_forever())


def forget(consumer):
    entry = _open.pop(consumer, None)
    if entry is None:
        return
    if entry.kind == "user":
        _users.pop(consumer, None)
        return
    key = _token_key(entry.key)
    _, consumers = _tokens.get(key, (None, set()))
    consumers.discard(consumer)
    if not consumers:
        _tokens.pop(key, None)


async def authenticate_user(consumer):
    """The user the connection's session holds now, read afresh after registering; None if nobody (any more)."""
    handshake_user = consumer.scope.get("user")
    if handshake_user is None or not handshake_user.is_authenticated:
        return None
    entry = Entry("user", handshake_user.pk)
    _watch(consumer, entry)
    # Session, user and the session's password hash read again, now that any later change is watched.
    user = await get_user(consumer.scope)
    if not user.is_authenticated or user.pk != handshake_user.pk or not user.is_active:
        forget(consumer)
        return None
    entry.snapshot = snapshot(user)
    return user


async def authenticate_agent(consumer, claims):
    """True while the token is still good (not retired, credential active), read after registering."""
    _watch(consumer, Entry("agent", claims))
    if await sync_to_async(credentials.token_refusal)(claims) is not None:
        forget(consumer)
        return False
    return True


async def still_allowed(consumer):
    """This one connection's rights, checked now (e.g. before a replay it asked for)."""
    entry = _open.get(consumer)
    if entry is None:
        return True  # not a watched identity (never authenticated)
    if entry.kind == "agent":
        return await sync_to_async(credentials.token_refusal)(entry.key) is None
    if entry.snapshot is None:
        return True
    rows = await database_sync_to_async(_user_rows)({entry.key})
    return rows.get(entry.key) == entry.snapshot


def _user_rows(pks):
    model, fields, pks = get_user_model(), user_fields(), list(pks)
    rows = {}
    for start in range(0, len(pks), CHUNK):
        for pk, *values in model._default_manager.filter(pk__in=pks[start : start + CHUNK]).values_list(
            "pk", *fields
        ):
            rows[pk] = tuple(values)
    return rows


async def check():
    """Close every connection of this process whose owner's rights changed since it was built."""
    users = [(consumer, entry) for consumer, entry in _users.items() if entry.snapshot is not None]
    if users:
        rows = await database_sync_to_async(_user_rows)({entry.key for _, entry in users})
        for consumer, entry in users:
            if rows.get(entry.key) != entry.snapshot:
                _revoke(consumer, CLOSE_RECHECK)
    if _tokens:
        # Distinct tokens by id (a str, its hash kept): hashing 10,000 claims twice a second took most of a check.
        tokens = {key: claims for key, (claims, _) in _tokens.items()}
        refused = {_token_key(claims) for claims in await database_sync_to_async(credentials.refused)(tokens.values())}
        now = time.time()
        for key, claims in tokens.items():
            if claims.expires_at <= now or key in refused:
                for consumer in list(_tokens.get(key, (None, ()))[1]):
                    _revoke(consumer, CLOSE_UNAUTHORIZED)


def _token_key(claims):
    return claims.token_id or claims  # a token without an id stands for itself


def _revoke(consumer, code):
    forget(consumer)
    consumer.revoke(code)


async def _check_forever():
    global _last_log
    while _open:
        await asyncio.sleep(INTERVAL)
        try:
            await check()
        except Exception:  # noqa: BLE001 - keep checking; the next round may reach the database again
            if time.monotonic() - _last_log > LOG_EVERY:
                _last_log = time.monotonic()
                logger.exception("could not check open connections against account changes")

