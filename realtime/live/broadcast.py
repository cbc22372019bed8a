"""``POST /broadcast/<session_id>`` and ``POST /broadcast/``: the sidecar's door into the channel layer.

``/broadcast/<session_id>`` takes one event envelope, or ``{"events": [...]}`` for one
session. ``POST /broadcast/memory`` takes memory events
(``realtime.envelope.validate_memory_event``) the same way. ``/broadcast/`` takes several
targets' events in one request, ``{"batches": [{"target": "<session_id>" | "memory",
"events": [...]}, ...]}``: a publisher with many sessions waiting sends them all at once,
since each request costs Daphne more than delivering a short batch does. The whole body is
checked before anything is delivered; a session that does not exist is refused on its own
(listed under ``"refused"`` in the 202 answer) and the other targets are delivered. Both
doors take at most ``MAX_EVENTS`` events per request. Requires
``Authorization: Bearer <SCS_BROADCAST_SECRET>`` from an address in
``SCS_BROADCAST_ALLOWED_IPS``, sent directly: a request that came through a
proxy (``PROXY_HEADERS``) is refused, since behind a proxy on the same host every
client address is the proxy's. Answers 202 with the number of events group-sent;
every bad request gets a JSON error, never a 500.

``accept`` is the door. ``BroadcastConsumer`` serves it as a Channels HTTP
consumer routed ahead of Django (``realtime.routing.http_urlpatterns``): a
broadcast then skips Django's middleware and request signals, which cost more
than the rest of the delivery. ``realtime.views.broadcast`` serves the same door
as a plain Django view, for projects that route all HTTP through Django.
"""

import ipaddress
import json
import logging
from dataclasses import dataclass

from channels.generic.http import AsyncHttpConsumer

from realtime import conf
from realtime.broadcast_client import MAX_EVENTS
from realtime.envelope import MEMORY_TARGET, encode, validate_event, validate_memory_event
from realtime.live import delivery
from realtime.live.dispatching import dispatch_directly
from realtime.models import is_session_id
from realtime.shared_secret import bearer, holds_secret

logger = logging.getLogger(__name__)

# Headers a reverse proxy adds (the README's nginx sample sets the first two on every location).
PROXY_HEADERS = ("x-forwarded-for", "x-real-ip", "forwarded")


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict


def refuse(status, code, message):
    return Answer(status, {"success": False, "error": message, "code": code})


def check_client(address, proxied=False):
    """None when ``address`` is in ``SCS_BROADCAST_ALLOWED_IPS`` and no proxy relayed the request, else the refusal."""
    if proxied:
        logger.warning("broadcast refused: the request came through a proxy (from %s)", address or "?")
        return refuse(403, "PROXIED", "broadcasts must reach Daphne directly, not through a proxy")
    try:
        client = ipaddress.ip_address((address or "").split("%", 1)[0])
    except ValueError:
        client = None
    if getattr(client, "ipv4_mapped", None):
        client = client.ipv4_mapped  # ::ffff:127.0.0.1 from a dual-stack socket
    allowed = (ipaddress.ip_network(network, strict=False) for network in conf.get("SCS_BROADCAST_ALLOWED_IPS"))
    if client is None or not any(client in network for network in allowed):
        logger.warning("broadcast refused: client address %s is not in SCS_BROADCAST_ALLOWED_IPS", address or "?")
        return refuse(403, "FORBIDDEN_CLIENT", "this address may not broadcast (see SCS_BROADCAST_ALLOWED_IPS)")
    return None


def check_secret(authorization, address=""):
    """None when the ``Authorization`` header carries the broadcast secret, else the refusal."""
    if not bearer(authorization):
        return refuse(401, "AUTH_REQUIRED", "send Authorization: Bearer <SCS_BROADCAST_SECRET>")
    if not holds_secret(authorization):
        logger.warning("broadcast refused: wrong secret from %s", address or "?")
        return refuse(403, "FORBIDDEN", "the broadcast secret does not match")
    return None


def too_large():
    return refuse(413, "TOO_LARGE", f"body is larger than {conf.get('SCS_BROADCAST_MAX_BODY')} bytes")


def parse_json(body):
    """``(parsed, None)`` or ``(None, refusal)``; ``body`` None means it was too large to read."""
    if body is None or len(body) > conf.get("SCS_BROADCAST_MAX_BODY"):
        return None, too_large()
    try:
        return json.loads(body), None
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser allows
        return None, refuse(400, "BAD_JSON", "body is not valid JSON")


def check_events(events, target):
    """None when ``events`` is a non-empty list of valid events for ``target``, else the refusal."""
    if not isinstance(events, list) or not events:
        return refuse(400, "BAD_EVENT", "'events' must be a non-empty list")
    for event in events:
        problem = validate_memory_event(event) if target == MEMORY_TARGET else validate_event(event, target)
        if problem:
            return refuse(400, "BAD_EVENT", problem)
    return None


def check_target(target):
    if not is_session_id(target) and target != MEMORY_TARGET:
        return refuse(400, "INVALID_SESSION_ID", "session ids look like session_ + 16 hex characters")
    return None


def too_many():
    return refuse(413, "TOO_LARGE", f"at most {MAX_EVENTS} events per request")


def parse_events(body, session_id):
    """``(events, None)`` or ``(None, refusal)``; ``body`` None means it was too large to read.

    ``session_id`` is the door's target: a session's id, or ``MEMORY_TARGET`` for memory events.
    """
    parsed, refusal = parse_json(body)
    if refusal:
        return None, refusal
    batch = isinstance(parsed, dict) and "events" in parsed
    if batch and parsed.keys() != {"events"}:
        return None, refuse(400, "BAD_EVENT", "a batch is {\"events\": [...]} with no other field")
    events = parsed["events"] if batch else [parsed]
    if isinstance(events, list) and len(events) > MAX_EVENTS:
        return None, too_many()
    refusal = check_events(events, session_id)
    return (None, refusal) if refusal else (events, None)


BATCHES_SHAPE = 'the body is {"batches": [{"target": "<session_id>" or "memory", "events": [...]}, ...]}'


def parse_batches(body):
    """``([(target, events), ...], None)`` or ``(None, refusal)`` for the several-target door."""
    parsed, refusal = parse_json(body)
    if refusal:
        return None, refusal
    if not isinstance(parsed, dict) or parsed.keys() != {"batches"} or not isinstance(parsed["batches"], list) \
            or not parsed["batches"]:
        return None, refuse(400, "BAD_EVENT", BATCHES_SHAPE)
    batches = []
    for batch in parsed["batches"]:
        if not isinstance(batch, dict) or batch.keys() != {"target", "events"} or not isinstance(batch["target"], str):
            return None, refuse(400, "BAD_EVENT", BATCHES_SHAPE)
        batches.append((batch["target"], batch["events"]))
    if sum(len(events) for _, events in batches if isinstance(events, list)) > MAX_EVENTS:
        return None, too_many()
    for target, events in batches:
        refusal = check_target(target) or check_events(events, target)
        if refusal:
            return None, refusal
    return batches, None


def through_proxy(header_names):
    """True when any of ``header_names`` (lower-case ``str``) is one a proxy adds."""
    return any(name in PROXY_HEADERS for name in header_names)


async def accept(session_id, *, client, authorization, body, proxied):
    """Check and deliver one broadcast request; returns the Answer to send.

    ``proxied``: the request carries a header a proxy adds (``through_proxy``).
    """
    refusal = check_client(client, proxied) or check_secret(authorization, client) or check_target(session_id)
    if refusal:
        return refusal
    events, refusal = parse_events(body, session_id)
    if refusal:
        return refusal
    if await delivery.deliver_many([(session_id, events)]):
        return refuse(404, "SESSION_NOT_FOUND", f"no session {session_id}")
    return Answer(202, {"success": True, "accepted": len(events)})


async def accept_many(*, client, authorization, body, proxied):
    """Check and deliver one request of several targets' batches (``POST /broadcast/``); the Answer to send.

    202 once the body is valid, with ``accepted`` (events delivered) and ``refused`` (the sessions that do
    not exist, each with its code and error; their events were not delivered, the others' were).
    """
    refusal = check_client(client, proxied) or check_secret(authorization, client)
    if refusal:
        return refusal
    batches, refusal = parse_batches(body)
    if refusal:
        return refusal
    missing = await delivery.deliver_many(batches)
    accepted = sum(len(events) for target, events in batches if target not in missing)
    refused = [{"target": target, "code": "SESSION_NOT_FOUND", "error": f"no session {target}"}
               for target in dict.fromkeys(missing)]
    return Answer(202, {"success": True, "accepted": accepted, "refused": refused})


class BroadcastConsumer(AsyncHttpConsumer):
    """The broadcast door as a Channels HTTP consumer (no Django middleware on the hot path).

    Channels closes stale database connections (a hop to the sync thread) before every handler; the
    door reads the database only for a session it has not delivered to yet, or after a gap, and those
    reads close stale connections around themselves (``database_sync_to_async``). Skipping the hop per
    request took Daphne's CPU per 1,000 frames from 0.389-0.397 s to 0.351-0.388 s at 1,000 viewers over 100
    sessions (``python -m bench fanout --viewers 1000 --sessions 100 --rounds 20 --pause 0.1``, two runs each).
    """

    async def dispatch(self, message):
        await dispatch_directly(self, message)

    async def handle(self, body):
        if self.scope["method"] != "POST":
            answer = refuse(405, "METHOD_NOT_ALLOWED", "use POST")
        else:
            headers = dict(self.scope.get("headers", []))
            request = {"client": (self.scope.get("client") or ("",))[0],
                       "authorization": headers.get(b"authorization", b"").decode("latin-1"), "body": body,
                       "proxied": through_proxy(name.decode("latin-1").lower() for name in headers)}
            session_id = self.scope["url_route"]["kwargs"].get("session_id")
            answer = await (accept_many(**request) if session_id is None else accept(session_id, **request))
        extra = [(b"Allow", b"POST")] if answer.status == 405 else []
        await self.send_response(
            answer.status, encode(answer.body).encode(), headers=[(b"Content-Type", b"application/json"), *extra]
        )
