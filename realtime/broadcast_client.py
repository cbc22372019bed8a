"""The client side of Daphne's broadcast door: ``POST <SCS_BROADCAST_URL>/broadcast/<session_id>``,
and ``POST <SCS_BROADCAST_URL>/broadcast/`` for several sessions at once.

Everything about that protocol lives here, for both callers: the publisher's
queued sender (``send_many``, async, one attempt per call: the sender backs off and
calls again for what failed) and host code with no publisher loop (``send_sync``: a shell, a
Celery worker; it tries each listed Daphne in turn, then gives up and logs).

- ``SCS_BROADCAST_URL`` may list several Daphne processes, comma-separated. Any
  one will do (a shared channel layer reaches the viewers of every process), so
  a failure moves the client to the next one.
- Re-sending is always safe: viewers drop any seq they already have. So a POST
  is retried on connection errors and on ``RETRYABLE_STATUS``; any other status
  means Daphne refused the events for good, and ``hint`` says what to check.
- A batch whose body would exceed ``MAX_BODY_BYTES`` (or ``MAX_EVENTS`` events) goes as
  several requests, older events first.
- ``send_many`` answers per target: Daphne refuses a session it does not hold on its own
  (``REJECTED``), and delivers the other targets of the same request. A Daphne that answers
  ``POST /broadcast/`` with 404 predates that door: its batches go one session at a time
  (``POST /broadcast/<session_id>``), and so does everything after for that Daphne until it
  cannot be reached (it is restarting, perhaps upgraded), so the publisher and Daphne may be
  upgraded in either order.
- Neither side follows redirects or takes a proxy from the environment: the door answers
  only direct requests, and a redirect would carry the secret elsewhere.
- The async side (every message a publisher sends) is an ``aiohttp`` session: 0.22–0.31 ms of
  CPU per request against httpx's 0.75–0.97 ms (``python -m bench broadcast_client``). The sync
  side (a shell, a worker) stays on httpx, which has a blocking client.
"""

import asyncio
import dataclasses
import json
import logging

import aiohttp
import httpx

logger = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
# Django reads request bodies of at most DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB by default) and answers 413 above.
MAX_BODY_BYTES = 1024 * 1024
MAX_EVENTS = 1000  # events the door takes in one request
SENT, RETRY, REJECTED = "sent", "retry", "rejected"


def parse_targets(base_url):
    """The Daphne base URLs listed in ``base_url`` (comma-separated), without trailing slashes."""
    return [url.strip().rstrip("/") for url in str(base_url).split(",") if url.strip()] or [""]


def hint(status, text=""):
    """What an operator should check when Daphne answers ``status`` (not retryable) to a broadcast."""
    if status in (401, 403):
        return ("SCS_BROADCAST_SECRET differs from Daphne's, or this address is not in SCS_BROADCAST_ALLOWED_IPS "
                "(and a proxy must not relay /broadcast/)")
    if status == 404 and "SESSION_NOT_FOUND" in text:
        return "the session is not in Daphne's database: check that both use the same DATABASE_URL / SCS_DATA_DIR"
    if status == 404:
        return "SCS_BROADCAST_URL may miss the prefix the app is mounted under"
    if status == 413:
        return "the batch is larger than Daphne accepts (SCS_HTTP_MAX_BODY, DATA_UPLOAD_MAX_MEMORY_SIZE)"
    return "see Daphne's log"


UNREACHABLE_HINT = "Is Daphne running there? Check SCS_BROADCAST_URL (it includes the prefix the app is mounted under)."


@dataclasses.dataclass
class Result:
    """What one attempt came to: ``SENT``, ``RETRY`` (try again, perhaps elsewhere) or ``REJECTED`` (for good)."""

    outcome: str
    error: str = ""  # for the operator: what failed, where (names a URL, never a secret)
    hint: str = ""


def bodies(events):
    """``events`` of one session as request bodies of at most ``MAX_BODY_BYTES`` (unless one event is larger)."""
    body = json.dumps(events[0] if len(events) == 1 else {"events": events}, separators=(",", ":")).encode()
    if len(body) <= MAX_BODY_BYTES or len(events) == 1:
        return [body]
    half = len(events) // 2  # the older half first, so order holds
    return bodies(events[:half]) + bodies(events[half:])


def batch_bodies(batches):
    """``[(target, events), ...]`` as ``[(body, targets), ...]`` for ``POST /broadcast/``: each body at most
    ``MAX_BODY_BYTES`` and ``MAX_EVENTS`` events (unless one event is larger), a target's older events first."""
    count = sum(len(events) for _, events in batches)
    body = json.dumps({"batches": [{"target": target, "events": events} for target, events in batches]},
                      separators=(",", ":")).encode()
    if (len(body) <= MAX_BODY_BYTES and count <= MAX_EVENTS) or count == 1:
        return [(body, [target for target, _ in batches])]
    if len(batches) == 1:
        (target, events), half = batches[0], len(batches[0][1]) // 2
        return batch_bodies([(target, events[:half])]) + batch_bodies([(target, events[half:])])
    half = len(batches) // 2
    return batch_bodies(batches[:half]) + batch_bodies(batches[half:])


def refused_targets(text):
    """target -> what Daphne said of it, for the targets a 202 answer to ``POST /broadcast/`` lists as refused."""
    try:
        refused = json.loads(text).get("refused") or []
        return {item["target"]: f"{item.get('code', '')}: {item.get('error', '')}" for item in refused}
    except (ValueError, AttributeError, KeyError, TypeError):
        return {}


class BroadcastClient:
    """One keep-alive connection pool per process to the Daphne processes in ``base_url``."""

    def __init__(self, base_url, secret, *, timeout=5.0):
        self.targets = parse_targets(base_url)
        self.target = self.targets[0]
        self.timeout = timeout
        self._headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
        self._async = None  # the aiohttp session, for the event loop it was made on (``_loop``)
        self._loop = None
        self._sync = None
        self._one_door = set()  # the Daphne base URLs that have no several-target door (older versions)

    def _options(self):
        return {"timeout": httpx.Timeout(self.timeout, connect=min(self.timeout, 1.0)), "headers": self._headers,
                "limits": httpx.Limits(max_connections=4, max_keepalive_connections=4), "trust_env": False}

    def _session(self):
        """The aiohttp session of the running event loop (a new one if the loop is not the last one's)."""
        loop = asyncio.get_running_loop()
        if self._async is None or self._loop is not loop:
            self._async, self._loop = aiohttp.ClientSession(
                headers=self._headers, connector=aiohttp.TCPConnector(limit=4),
                timeout=aiohttp.ClientTimeout(total=self.timeout, connect=min(self.timeout, 1.0)),
            ), loop
        return self._async

    async def _attempt(self, url, body):
        """One POST of ``body`` to ``url``: ``(Result, status, text)``; status None when nothing answered."""
        try:
            async with self._session().post(url, data=body, allow_redirects=False) as response:
                status, text = response.status, (await response.read()).decode(errors="replace")
        except (aiohttp.ClientError, TimeoutError) as exc:
            return self._unreachable(url, exc), None, ""
        return self._answered(url, status, text), status, text

    async def send_many(self, batches):
        """One attempt to hand ``[(target, events), ...]`` to the current Daphne in one request (more when large);
        a Result per batch, in order. What follows a failed request is not tried and fails with it."""
        base = self.target
        if base in self._one_door:
            return await self._send_each(base, batches)
        url = f"{base}/broadcast/"
        results = {}
        requests = batch_bodies(batches)
        for n, (body, targets) in enumerate(requests):
            failure, status, text = await self._attempt(url, body)
            if status == 404:  # no such door: a Daphne older than it
                self._one_door.add(base)
                logger.warning("%s has no several-target broadcast door (an older Daphne): sending it one session "
                               "at a time until it restarts", base)
                # Whole batches, a batch split over requests included (viewers drop the seqs they have).
                unsent = {target for _, targets in requests[n:] for target in targets}
                rest = [batch for batch in batches if batch[0] in unsent]
                results.update(zip((target for target, _ in rest), await self._send_each(base, rest), strict=True))
                break
            if failure.outcome != SENT:
                for _, later in requests[n:]:
                    results.update(dict.fromkeys(later, failure))
                break
            refused = refused_targets(text)
            for target in targets:
                if target in refused:
                    results[target] = Result(REJECTED, f"{refused[target]} (from {url})",
                                             hint(404, "SESSION_NOT_FOUND"))
                else:
                    results.setdefault(target, Result(SENT))
        return [results[target] for target, _ in batches]

    async def _send_each(self, base, batches):
        """``batches`` one session at a time, through the one-session door of ``base``; a Result per batch."""
        results = []
        for target, events in batches:
            if results and results[-1].outcome == RETRY:
                results.append(results[-1])  # Daphne is unreachable or overloaded: the rest waits with it
                continue
            url, result = f"{base}/broadcast/{target}", Result(SENT)
            for body in bodies(events):
                result, _, _ = await self._attempt(url, body)
                if result.outcome != SENT:
                    break
            results.append(result)
        return results

    def send_sync(self, session_id, events):
        """Hand ``events`` to the first listed Daphne that accepts them (each tried once); the last failure."""
        if self._sync is None:
            # One attempt per Daphne (a transport retry would wait 0.5 s in the caller's thread): what none
            # accepts is left unannounced, and a sweeper announces it (realtime.announce).
            self._sync = httpx.Client(**self._options())
        result = Result(RETRY, "SCS_BROADCAST_URL is empty", UNREACHABLE_HINT)
        for _ in self.targets:
            url = f"{self.target}/broadcast/{session_id}"
            for body in bodies(events):
                try:
                    response = self._sync.post(url, content=body)
                except httpx.HTTPError as exc:
                    result = self._unreachable(url, exc)
                else:
                    result = self._answered(url, response.status_code, response.text)
                if result.outcome != SENT:
                    break
            if result.outcome != RETRY:
                return result
        return result

    def _unreachable(self, url, exc):
        # A Daphne that went away may come back upgraded: try its several-target door again then.
        self._one_door.discard(self.target)
        self._next_target()
        return Result(RETRY, f"{type(exc).__name__} posting to {url}", UNREACHABLE_HINT)

    def _answered(self, url, status, text):
        if status == 202:
            return Result(SENT)
        error = f"HTTP {status} from {url}"
        if status in RETRYABLE_STATUS:
            self._next_target()
            return Result(RETRY, error, "Daphne is overloaded or restarting; retrying")
        return Result(REJECTED, error, hint(status, text[:1000]))

    def _next_target(self):
        """The next Daphne listed in ``SCS_BROADCAST_URL`` (the same one when it lists one)."""
        self.target = self.targets[(self.targets.index(self.target) + 1) % len(self.targets)]

    async def aclose(self):
        if self._async is not None:
            await self._async.close()
            self._async = self._loop = None
