"""The one way events leave the sidecar: POST /broadcast/<session_id> on Daphne.

``publish`` is called after a message's transaction commits (from any thread)
and only appends to a bounded queue, so storing a message never waits on
Daphne. One task sends what is waiting, in order per session, batched, over one
keep-alive ``httpx.AsyncClient``. When Daphne is down or hung it backs off and
retries; re-sending a batch is safe because viewers drop any seq they already
have. ``base_url`` may list several Daphne processes, comma-separated: the
bridge sends to one and moves to the next when it cannot be reached or answers
with a retryable status. Any one will do, since the (Redis) channel layer fans
out to the viewers of every process; order holds because each batch is sent
only after the previous one was accepted. When the queue overflows the oldest
waiting events are dropped and counted; viewers recover them from the database
by seq.
"""

import asyncio
import collections
import json
import logging
import time

import httpx

logger = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
# A batch larger than this is split in two: Django reads request bodies of at most
# DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB by default) and answers 413 to anything bigger.
MAX_BODY_BYTES = 1024 * 1024


class Bridge:
    def __init__(self, base_url, secret, *, max_queue=10_000, batch_max=200, timeout=5.0,
                 backoff_start=0.05, backoff_max=2.0):
        self.targets = [url.strip().rstrip("/") for url in base_url.split(",") if url.strip()] or [""]
        self.base_url = self.targets[0]
        self.secret = secret
        self.max_queue = max_queue
        self.batch_max = batch_max
        self.timeout = timeout
        self.backoff_start = backoff_start
        self.backoff_max = backoff_max
        self.queue = collections.deque()
        self.inflight = []  # [(session_id, [event, ...])] taken from the queue, not yet accepted
        self.counters = {"sent": 0, "batches": 0, "failed_attempts": 0, "retried": 0, "dropped": 0, "rejected": 0}
        self.last_error = ""
        self._last_warning = 0.0
        self._loop = None
        self._wakeup = None
        self._task = None
        self._client = None

    # Lifecycle

    async def start(self):
        self._loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 1.0)),
            headers={"Authorization": f"Bearer {self.secret}", "Content-Type": "application/json"},
            limits=httpx.Limits(max_connections=4, max_keepalive_connections=4),
        )
        self._task = asyncio.create_task(self._run(), name="broadcast-bridge")

    async def stop(self, flush_timeout=2.0):
        """Send what is waiting (for at most ``flush_timeout`` s), then close."""
        if self._task is None:
            return
        deadline = time.monotonic() + flush_timeout
        while (self.queue or self.inflight) and time.monotonic() < deadline and not self._task.done():
            await asyncio.sleep(0.02)
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        await self._client.aclose()
        self._task = None

    # Entry point

    def publish(self, event):
        """Queue ``event`` for sending; safe to call from any thread, never blocks."""
        loop = self._loop
        if loop is None:
            self.counters["dropped"] += 1
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._enqueue(event)
        else:
            loop.call_soon_threadsafe(self._enqueue, event)

    def _enqueue(self, event):
        if len(self.queue) >= self.max_queue:
            self.queue.popleft()
            self.counters["dropped"] += 1
            self._warn("broadcast queue full (%d events): dropped the oldest; viewers will recover it by seq",
                       self.max_queue)
        self.queue.append(event)
        self._wakeup.set()

    def stats(self):
        return {
            **self.counters,
            "queue_depth": len(self.queue),
            "inflight": sum(len(events) for _, events in self.inflight),
            "last_error": self.last_error,
            "target": self.base_url,
            "targets": len(self.targets),
        }

    # Sender task

    def _take_batch(self):
        groups = {}
        for _ in range(min(self.batch_max, len(self.queue))):
            event = self.queue.popleft()
            groups.setdefault(event["session_id"], []).append(event)
        return list(groups.items())

    async def _run(self):
        delay = self.backoff_start
        while True:
            if not self.inflight:
                if not self.queue:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                self.inflight = self._take_batch()
            session_id, events = self.inflight[0]
            try:
                outcome = await self._post(session_id, events)
            except Exception as exc:  # noqa: BLE001 - e.g. a malformed SCS_BROADCAST_URL: keep the task alive
                self.counters["failed_attempts"] += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                self._warn("cannot send to Daphne (%s: %s); check SCS_BROADCAST_URL", type(exc).__name__, exc)
                outcome = "retry"
            if outcome == "split":
                continue
            if outcome == "retry":
                self.counters["retried"] += len(events)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff_max)
                continue
            delay = self.backoff_start
            self.inflight.pop(0)

    async def _post(self, session_id, events):
        body = json.dumps(events[0] if len(events) == 1 else {"events": events}, separators=(",", ":"))
        if len(body) > MAX_BODY_BYTES and len(events) > 1:
            half = len(events) // 2  # send the older half first, so order holds
            self.inflight[0:1] = [(session_id, events[:half]), (session_id, events[half:])]
            return "split"
        url = f"{self.base_url}/broadcast/{session_id}"
        try:
            response = await self._client.post(url, content=body)
        except httpx.HTTPError as exc:
            self.counters["failed_attempts"] += 1
            self.last_error = f"{type(exc).__name__} posting to {url}"
            self._warn("cannot reach Daphne at %s (%s); retrying. Is it running? Check SCS_BROADCAST_URL.",
                       self.base_url, type(exc).__name__)
            self._next_target()
            return "retry"
        if response.status_code == 202:
            self.counters["sent"] += len(events)
            self.counters["batches"] += 1
            return "sent"
        self.counters["failed_attempts"] += 1
        self.last_error = f"HTTP {response.status_code} from {url}"
        if response.status_code in RETRYABLE_STATUS:
            self._warn("Daphne answered %s to a broadcast; retrying", response.status_code)
            self._next_target()
            return "retry"
        self.counters["rejected"] += len(events)
        hint = (
            "SCS_BROADCAST_SECRET differs between the sidecar and Daphne"
            if response.status_code in (401, 403)
            else "the sidecar and Daphne may use different databases (DATABASE_URL / SCS_DATA_DIR)"
            if response.status_code == 404
            else "see Daphne's log"
        )
        logger.error("Daphne refused %d event(s) with HTTP %s: %s", len(events), response.status_code, hint)
        return "rejected"

    def _next_target(self):
        """Send the retry to the next Daphne in ``SCS_BROADCAST_URL`` (the same one when it lists one)."""
        self.base_url = self.targets[(self.targets.index(self.base_url) + 1) % len(self.targets)]

    def _warn(self, message, *args):
        """Log at most one warning every 10 s, so an outage does not flood the log."""
        now = time.monotonic()
        if now - self._last_warning >= 10:
            self._last_warning = now
            logger.warning(message + " [sent=%d dropped=%d queued=%d]", *args, self.counters["sent"],
                           self.counters["dropped"], len(self.queue))
