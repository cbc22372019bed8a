"""Feeding this process's wake hub (``realtime.wake``) with the messages other processes commit.

Every committed message reaches the channel layer through ``realtime.live.delivery.deliver_many``,
which also group-sends it to the wake group. A ``WakeStream`` brings that group to the hub:

- shared layer (Redis; ``realtime.live.layers.is_process_local`` is false): it joins the
  wake group on the layer itself and hands each batch to the hub;
- in-memory layer: the group lives in Daphne's process, so it opens ``/ws/wake/`` on the
  Daphne of ``SCS_BROADCAST_URL`` (``realtime.live.wake_relay``, the broadcast secret as
  Bearer), the next target when one is down, and hands each frame to the hub.

It reconnects with back-off (one warning per outage), and on every (re)connect invalidates
every waiter, which then reads the database: what was missed meanwhile is found there.

A safety poll covers what no stream brought (Daphne stopped, an event dropped): while anyone
waits, every ``SCS_WAKE_POLL_INTERVAL`` s one query reads the newest seq of every waited
session, and the waiters that know less are woken to read (``Hub.behind``). Inbox waiters
(a mention may come in any session) are woken to read, while the stream is down, when one
more query finds that any message was stored. No waiter polls.
"""

import asyncio
import contextlib
import json
import logging
import time

from channels.db import DatabaseSyncToAsync
from channels.layers import get_channel_layer

from realtime import conf, wake
from realtime.broadcast_client import parse_targets
from realtime.models import Message, Session

logger = logging.getLogger(__name__)

BACKOFF_START = 0.1
BACKOFF_MAX = 5.0
REFUSED_DELAY = 60.0  # seconds before trying again where Daphne refused the relay (each refusal is logged there)
REJOIN_INTERVAL = 3600  # seconds: a shared layer forgets group members after a day (group_expiry)


def stream_source():
    """``"channel_layer"`` when the layer is shared between processes, else ``"daphne"`` (the wake relay)."""
    from realtime.live.layers import default_is_process_local

    return "daphne" if default_is_process_local() else "channel_layer"


def refused(exc):
    """The relay's handshake was refused (401, 403, 404): a setting, not an outage."""
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None) in (401, 403, 404)


def relay_url(target):
    """The wake relay's WebSocket URL on the Daphne at ``target`` (an ``SCS_BROADCAST_URL`` entry)."""
    scheme, sep, rest = target.partition("://")
    return f"{'wss' if scheme == 'https' else 'ws'}{sep}{rest}/ws/wake/"


def newest_message_id():
    """The id of the newest message of any session (0 when there is none)."""
    return Message.objects.order_by("-id").values_list("id", flat=True).first() or 0


def last_seqs(session_ids):
    """session id -> last seq, for those of ``session_ids`` that exist (one query)."""
    return dict(Session.objects.filter(pk__in=list(session_ids)).values_list("id", "last_seq"))


class WakeStream:
    """The wake group's events into ``hub``, from ``source`` ("channel_layer" or "daphne"), plus the safety poll."""

    def __init__(self, hub=wake.hub, *, source=None, targets=None, secret=None, poll_interval=None):
        self.hub = hub
        self.source = source or stream_source()
        self.targets = targets or parse_targets(conf.get("SCS_BROADCAST_URL"))
        self.secret = conf.get("SCS_BROADCAST_SECRET") if secret is None else secret
        self.poll_interval = conf.get("SCS_WAKE_POLL_INTERVAL") if poll_interval is None else poll_interval
        self.connected = False
        self.target = None  # where the stream is (or was last) connected
        self.counters = {"connects": 0, "failures": 0, "frames": 0, "events": 0, "polls": 0, "poll_wakes": 0}
        self.last_error = ""
        self._warned = False
        self._tasks = []

    # Lifecycle

    async def start(self):
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._stream_forever(), name="wake-stream")]
        if self.poll_interval > 0:
            self._tasks.append(loop.create_task(self._poll_forever(), name="wake-poll"))

    async def stop(self):
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        self.connected = False

    def stats(self):
        return {**self.counters, "source": self.source, "connected": self.connected, "target": self.target,
                "last_error": self.last_error, "poll_interval": self.poll_interval}

    # The stream

    async def _stream_forever(self):
        delay, attempt = BACKOFF_START, 0
        while True:
            target = self.targets[attempt % len(self.targets)] if self.source == "daphne" else "channel_layer"
            try:
                if self.source == "daphne":
                    await self._relay(target)
                else:
                    await self._layer()
                error = "the stream ended"
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - down, refused, reset: the poll covers while we retry
                error = f"{type(exc).__name__}: {exc}"
                if refused(exc):  # a wrong secret or address will not fix itself: retry rarely, log rarely
                    delay = max(delay, REFUSED_DELAY)
                    error += " (check SCS_BROADCAST_SECRET, SCS_BROADCAST_ALLOWED_IPS and SCS_BROADCAST_URL)"
            if self.connected:
                delay = BACKOFF_START  # it worked for a while: retry at once, then back off
            self.connected = False
            self.counters["failures"] += 1
            self.last_error = f"{target}: {error}"
            if not self._warned:
                self._warned = True
                logger.warning("wake stream from %s lost or not reachable (%s); waiting agents are woken by the "
                               "safety poll meanwhile, retrying", target, error)
            attempt += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, max(BACKOFF_MAX, delay))

    def _on_connect(self, target):
        self.connected = True
        self.target = target
        self.counters["connects"] += 1
        if self._warned:
            self._warned = False
            logger.info("wake stream from %s restored", target)
        self.hub.invalidate()  # what was committed while it was down is in the database

    def _hand_over(self, events):
        self.counters["frames"] += 1
        self.counters["events"] += len(events)
        self.hub.notify(events)

    async def _relay(self, target):
        import websockets

        headers = {"Authorization": f"Bearer {self.secret}"}
        async with websockets.connect(relay_url(target), additional_headers=headers, open_timeout=5,
                                      max_size=None, ping_interval=20, ping_timeout=20) as socket:
            self._on_connect(target)
            async for text in socket:
                frame = json.loads(text)
                if frame.get("type") == "events":
                    self._hand_over(frame["events"])

    async def _layer(self):
        from realtime.live.groups import WAKE_GROUP

        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(WAKE_GROUP, channel)
        self._on_connect("channel_layer")
        joined = time.monotonic()
        try:
            while True:
                # Bounded, so a quiet day does not outlive the membership (the layer's group_expiry).
                with contextlib.suppress(TimeoutError):
                    message = await asyncio.wait_for(layer.receive(channel), REJOIN_INTERVAL)
                    if message.get("type") == "wake.events":
                        self._hand_over(message["events"])
                if time.monotonic() - joined > REJOIN_INTERVAL:
                    await layer.group_add(WAKE_GROUP, channel)
                    joined = time.monotonic()
        finally:
            with contextlib.suppress(Exception):  # the layer is down: it forgets the member by itself
                await asyncio.wait_for(layer.group_discard(WAKE_GROUP, channel), 2)

    # The safety poll

    async def _poll_forever(self):
        read = DatabaseSyncToAsync(last_seqs, thread_sensitive=False)
        read_newest_id = DatabaseSyncToAsync(newest_message_id, thread_sensitive=False)
        newest_id = None  # the newest message id when the inboxes were last checked
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                if self.hub.sessions:
                    newest = await read(list(self.hub.sessions))
                    self.counters["polls"] += 1
                    self.counters["poll_wakes"] += self.hub.behind(newest)
                if self.hub.inboxes and not self.connected:
                    # A mention may be in any session: while the stream is down, inbox waiters read again
                    # whenever any message was stored (one query), rather than each polling its inbox.
                    latest = await read_newest_id()
                    if newest_id is None or latest != newest_id:
                        self.counters["poll_wakes"] += sum(len(waiters) for waiters in self.hub.inboxes.values())
                        self.hub.invalidate(session_ids=())
                    newest_id = latest
                else:
                    newest_id = None
            except Exception as exc:  # noqa: BLE001 - the database restarting: next interval
                logger.debug("wake poll failed: %s", exc)


_stream = None


def get_stream():
    """This process's wake stream (built from the settings on first use; started by the sidecar's lifespan)."""
    global _stream
    if _stream is None:
        _stream = WakeStream()
    return _stream


def stats():
    """The hub's and the stream's figures, for /health and get_performance_metrics."""
    return {**wake.hub.stats(), "stream": get_stream().stats()}
