"""Waits follow their token: a wait ends within a second once the token it waits under stops being good.

While any guarded waiter is registered (``realtime.wake``), every ``INTERVAL`` seconds
the tokens of all of this process's waiters are checked at once: retired, their key
revoked or expired (``credentials.refused``: a few indexed queries for all of them,
whichever process made the change), or past their own expiry. Each waiter whose
token fails is refused, and its wait ends with ``TOKEN_REVOKED`` or ``TOKEN_EXPIRED``.
The browser side does the same for WebSockets (``realtime.live.access``).
"""

import asyncio
import logging
import time

from channels.db import DatabaseSyncToAsync

from realtime import credentials
from realtime.errors import ErrorCode, OperationError

logger = logging.getLogger(__name__)

INTERVAL = 0.5  # seconds between two checks: with the query time, a change is seen within ~0.6 s


def revoked():
    return OperationError(ErrorCode.TOKEN_REVOKED, "this token was revoked, or its key was, while the call waited",
                          "Call authenticate_agent for a new token (with a valid key), then wait again from your "
                          "last cursor.")


def expired():
    return OperationError(ErrorCode.TOKEN_EXPIRED, "this token expired while the call waited",
                          "Call refresh_token, then wait again from your last cursor.")


async def check(hub):
    """Refuse the waiters of ``hub`` whose token stopped being good; returns how many."""
    held = dict(hub.guarded)
    if not held:
        return 0
    refused = await DatabaseSyncToAsync(credentials.refused, thread_sensitive=False)(set(held.values()))
    now = time.time()
    count = 0
    for waiter, claims in held.items():
        if waiter.refusal is None and (claims in refused or claims.expires_at <= now):
            waiter.refuse(revoked() if claims in refused else expired())
            count += 1
    hub.counters["rights_ended"] += count
    return count


async def guard_forever(hub):
    """Check every ``INTERVAL`` while any guarded waiter is registered, then end."""
    failing = False
    while hub.guarded:
        await asyncio.sleep(INTERVAL)
        try:
            await check(hub)
        except Exception as exc:  # noqa: BLE001 - e.g. the database restarting: check again next interval
            if not failing:
                logger.warning("cannot check the tokens of waiting calls (%s: %s); retrying", type(exc).__name__, exc)
            failing = True
        else:
            failing = False
