"""Who is watching a session: one database row per open WebSocket.

Rows are shared by every Daphne process. When a viewer joins or leaves, the
process announces the session's new viewer list to the session's group, at most
once every ``COALESCE`` seconds per session, so a thousand viewers connecting at
once cost a handful of announcements rather than a million. Each process
refreshes its own rows every ``HEARTBEAT`` seconds and removes rows nobody has
refreshed for ``TTL`` seconds (a process that died without saying goodbye).

Viewers receive ``{"type": "presence", "session_id", "viewers": [...], "total"}``
whenever the list changes, and on request (``{"type": "who"}``).
"""

import asyncio
import contextlib
import logging
from datetime import timedelta

from django.db.models import Count
from django.utils import timezone

from realtime.groups import session_group
from realtime.models import PresenceEntry

logger = logging.getLogger(__name__)

COALESCE = 0.2
HEARTBEAT = 20.0
TTL = 60.0
LIST_LIMIT = 100  # distinct viewers listed in one frame; "total" counts them all

_pending = {}  # session id -> task announcing its list soon (this process)
_local = {}  # channel name -> session id, for this process's connections
_heartbeat = None


async def viewers(session_id):
    """The distinct viewers of a session (at most LIST_LIMIT) and how many there are."""
    cutoff = timezone.now() - timedelta(seconds=TTL)
    rows = (
        PresenceEntry.objects.filter(session_id=session_id, last_seen__gte=cutoff)
        .values("kind", "viewer_id", "agent_type")
        .annotate(connections=Count("id"))
        .order_by("viewer_id", "kind", "agent_type")
    )
    listed = [
        {"kind": row["kind"], "id": row["viewer_id"], "agent_type": row["agent_type"],
         "connections": row["connections"]}
        async for row in rows[: LIST_LIMIT + 1]
    ]
    total = len(listed)
    if total > LIST_LIMIT:
        total = await rows.acount()
    return listed[:LIST_LIMIT], total


async def presence_frame(session_id):
    listed, total = await viewers(session_id)
    return {"type": "presence", "session_id": session_id, "viewers": listed, "total": total}


def announce(channel_layer, session_id):
    """Send the session's viewer list to its group soon (coalesced per session)."""
    if not _running_here(_pending.get(session_id)):
        _pending[session_id] = asyncio.create_task(_announce_later(channel_layer, session_id))


def _running_here(task):
    return task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop()


async def _announce_later(channel_layer, session_id):
    try:
        await asyncio.sleep(COALESCE)
    finally:
        _pending.pop(session_id, None)  # a change from now on schedules a new announcement
    try:
        frame = await presence_frame(session_id)
        await channel_layer.group_send(session_group(session_id), {"type": "presence.update", "frame": frame})
    except Exception:  # noqa: BLE001 - presence is best effort; never break the stream over it
        logger.exception("could not announce presence for %s", session_id)


async def join(channel_layer, session_id, channel_name, viewer):
    global _heartbeat
    await PresenceEntry.objects.aupdate_or_create(
        channel_name=channel_name,
        defaults={"session_id": session_id, "kind": viewer.kind, "viewer_id": viewer.id,
                  "agent_type": viewer.agent_type, "last_seen": timezone.now()},
    )
    _local[channel_name] = session_id
    if not _running_here(_heartbeat):
        _heartbeat = asyncio.create_task(_refresh_forever(channel_layer))
    announce(channel_layer, session_id)


async def leave(channel_layer, session_id, channel_name):
    _local.pop(channel_name, None)
    await PresenceEntry.objects.filter(channel_name=channel_name).adelete()
    announce(channel_layer, session_id)


async def _refresh_forever(channel_layer):
    """Keep this process's rows fresh and forget rows of processes that died."""
    while _local:
        await asyncio.sleep(HEARTBEAT)
        with contextlib.suppress(Exception):
            now = timezone.now()
            channels = list(_local)
            for start in range(0, len(channels), 500):
                await PresenceEntry.objects.filter(channel_name__in=channels[start : start + 500]).aupdate(
                    last_seen=now
                )
            stale = PresenceEntry.objects.filter(last_seen__lt=now - timedelta(seconds=TTL))
            sessions = {sid async for sid in stale.values_list("session_id", flat=True)}
            if sessions:
                await stale.adelete()
                for session_id in sessions:
                    announce(channel_layer, session_id)


class PresenceMixin:
    """Presence for a consumer with ``viewer``, ``session_id`` and ``send_frame``."""

    presence_joined = False

    async def presence_start(self):
        await join(self.channel_layer, self.session_id, self.channel_name, self.viewer)
        self.presence_joined = True

    async def presence_stop(self):
        if self.presence_joined:
            self.presence_joined = False
            await leave(self.channel_layer, self.session_id, self.channel_name)

    async def send_presence(self):
        await self.send_frame(await presence_frame(self.session_id))

    async def presence_update(self, message):
        if self.presence_joined:
            await self.send_frame(message["frame"])
