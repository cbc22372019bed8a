"""Who is watching a session: one database row per open WebSocket.

Rows are shared by every Daphne process. When a viewer joins or leaves, the
process announces the session's new viewer list to the session's group, at most
once every ``COALESCE`` seconds per session, and no more often than its open
connections allow at ``ANNOUNCE_RATE`` frames a second (10,000 connections: once
every 5 s): every announcement is a frame to every member, so a fixed window
would make N viewers joining cost N² frames. Each announcement is encoded once
for admins and once more as the parts every other viewer's frame is made of
(``frame_texts``), not per viewer. Each process
refreshes its own rows every ``HEARTBEAT`` seconds and removes rows nobody has
refreshed for ``TTL`` seconds (a process that died without saying goodbye).

Viewers receive ``{"type": "presence", "session_id", "viewers": [...], "total",
"people", "agents"}`` whenever the list changes, and on request (``{"type": "who"}``).
Admins (staff users, agents holding ``admin``) get every watcher in ``viewers``;
anyone else gets only themselves there, and the others as the counts ``people``
and ``agents`` (distinct viewers of each kind, themselves included).

The same rows cap connections per viewer (``SCS_MAX_CONNECTIONS_PER_VIEWER``,
across processes): a connection claims its row first and keeps it only if at most
cap rows of its viewer were claimed up to and including its own.
"""

import asyncio
import contextlib
import logging
from datetime import timedelta

from django.db.models import Count
from django.utils import timezone

from realtime import conf
from realtime.envelope import encode
from realtime.live.groups import session_group
from realtime.models import PresenceEntry

logger = logging.getLogger(__name__)

COALESCE = 0.2
ANNOUNCE_RATE = 2_000  # presence frames a second one process sends while viewers come and go
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


async def kind_counts(session_id):
    """Distinct viewers of each kind: ``{"user": n, "agent": m}``."""
    cutoff = timezone.now() - timedelta(seconds=TTL)
    rows = (
        PresenceEntry.objects.filter(session_id=session_id, last_seen__gte=cutoff)
        .values("kind").annotate(n=Count("viewer_id", distinct=True)).order_by("kind")
    )
    return {row["kind"]: row["n"] async for row in rows}


async def presence_frame(session_id):
    listed, total = await viewers(session_id)
    counts = await kind_counts(session_id)
    return {"type": "presence", "session_id": session_id, "viewers": listed, "total": total,
            "people": counts.get("user", 0), "agents": counts.get("agent", 0)}


def for_viewer(frame, viewer):
    """The frame ``viewer`` may see: admins the whole list, anyone else only themselves and the counts."""
    if viewer.is_admin:
        return frame
    me = next((v for v in frame["viewers"] if v["kind"] == viewer.kind and v["id"] == viewer.id), None)
    return {**frame, "viewers": [me or _unlisted(viewer)]}


def _unlisted(viewer):
    return {"kind": viewer.kind, "id": viewer.id, "agent_type": viewer.agent_type, "connections": 1}


def frame_texts(frame):
    """``frame`` encoded once for all its viewers: ``text_for`` then picks (or splices) each one's text."""
    rest = encode({key: value for key, value in frame.items() if key != "viewers"})
    return {"all": encode(frame), "head": rest[:-1] + ',"viewers":[',
            "listed": {f"{v['kind']}:{v['id']}": encode(v) for v in frame["viewers"]}}


def text_for(texts, viewer):
    """The encoded ``for_viewer`` frame of ``viewer``, made of ``frame_texts`` parts."""
    if viewer.is_admin:
        return texts["all"]
    me = texts["listed"].get(f"{viewer.kind}:{viewer.id}") or encode(_unlisted(viewer))
    return texts["head"] + me + "]}"


def announce(channel_layer, session_id):
    """Send the session's viewer list to its group soon (coalesced per session)."""
    if not _running_here(_pending.get(session_id)):
        _pending[session_id] = asyncio.create_task(_announce_later(channel_layer, session_id))


def _running_here(task):
    return task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop()


def window():
    """Seconds between two announcements of one session: longer the more connections this process has."""
    return max(COALESCE, len(_local) / ANNOUNCE_RATE)


async def _announce_later(channel_layer, session_id):
    try:
        await asyncio.sleep(window())
    finally:
        _pending.pop(session_id, None)  # a change from now on schedules a new announcement
    try:
        frame = await presence_frame(session_id)
        await channel_layer.group_send(session_group(session_id), {"type": "presence.update", "frame": frame,
                                                                   "texts": frame_texts(frame)})
    except Exception:  # noqa: BLE001 - presence is best effort; never break the stream over it
        logger.exception("could not announce presence for %s", session_id)


async def claim(channel_layer, session_id, channel_name, viewer):
    """Store this connection's row; False (and no row) when its viewer already has the most it may open.

    Rows get increasing ids as they are written, so of a burst of simultaneous connects
    exactly those within the cap count at most cap rows up to their own.
    """
    global _heartbeat
    now = timezone.now()
    entry, _ = await PresenceEntry.objects.aupdate_or_create(
        channel_name=channel_name,
        defaults={"session_id": session_id, "kind": viewer.kind, "viewer_id": viewer.id,
                  "agent_type": viewer.agent_type, "last_seen": now},
    )
    _local[channel_name] = session_id
    if not _running_here(_heartbeat):
        _heartbeat = asyncio.create_task(_refresh_forever(channel_layer))
    cap = conf.get("SCS_MAX_CONNECTIONS_PER_VIEWER")
    if cap:
        ahead = await PresenceEntry.objects.filter(
            kind=viewer.kind, viewer_id=viewer.id, pk__lte=entry.pk, last_seen__gte=now - timedelta(seconds=TTL)
        ).acount()
        if ahead > cap:
            _local.pop(channel_name, None)
            await PresenceEntry.objects.filter(pk=entry.pk).adelete()
            return False
    return True


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
    """Presence for a consumer with ``viewer``, ``session_id``, ``send_json`` and ``send_text``."""

    presence_claimed = False
    presence_joined = False

    async def presence_claim(self):
        """Take this connection's row (and slot); False when the viewer has no slot left."""
        self.presence_claimed = await claim(self.channel_layer, self.session_id, self.channel_name, self.viewer)
        return self.presence_claimed

    async def presence_start(self):
        """Caught up: from now on receive presence updates, and announce this viewer to the others."""
        self.presence_joined = True
        announce(self.channel_layer, self.session_id)

    async def presence_stop(self):
        self.presence_joined = False
        if self.presence_claimed:
            self.presence_claimed = False
            await leave(self.channel_layer, self.session_id, self.channel_name)

    async def send_presence(self):
        await self.send_json(for_viewer(await presence_frame(self.session_id), self.viewer))

    async def presence_update(self, message):
        if self.presence_joined:
            await self.send_text(text_for(message["texts"], self.viewer))
