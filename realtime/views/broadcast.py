"""``POST /broadcast/<session_id>``: the sidecar's door into the channel layer.

Body: one event envelope, or ``{"events": [...]}`` for one session. Requires
``Authorization: Bearer <SCS_BROADCAST_SECRET>``. Answers 202 with the number of
events group-sent; every bad request gets a JSON error, never a 500.
"""

import hmac
import ipaddress
import json
import logging

from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from realtime import conf, delivery
from realtime.envelope import validate_event
from realtime.models import is_session_id

logger = logging.getLogger(__name__)

MAX_EVENTS = 1000


def error(status, code, message):
    return JsonResponse({"success": False, "error": message, "code": code}, status=status)


def check_client(request):
    """None when the caller's address is in ``SCS_BROADCAST_ALLOWED_IPS``, else the error response."""
    address = request.META.get("REMOTE_ADDR", "")
    try:
        client = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        client = None
    if getattr(client, "ipv4_mapped", None):
        client = client.ipv4_mapped  # ::ffff:127.0.0.1 from a dual-stack socket
    allowed = (ipaddress.ip_network(network, strict=False) for network in conf.get("SCS_BROADCAST_ALLOWED_IPS"))
    if client is None or not any(client in network for network in allowed):
        logger.warning("broadcast refused: client address %s is not in SCS_BROADCAST_ALLOWED_IPS", address or "?")
        return error(403, "FORBIDDEN_CLIENT", "this address may not broadcast (see SCS_BROADCAST_ALLOWED_IPS)")
    return None


def check_secret(request):
    """None when the bearer secret matches, else the error response."""
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if not presented or scheme.lower() != "bearer":
        return error(401, "AUTH_REQUIRED", "send Authorization: Bearer <SCS_BROADCAST_SECRET>")
    expected = conf.get("SCS_BROADCAST_SECRET")
    if not expected or not hmac.compare_digest(presented.strip().encode(), expected.encode()):
        logger.warning("broadcast refused: wrong secret from %s", request.META.get("REMOTE_ADDR", "?"))
        return error(403, "FORBIDDEN", "the broadcast secret does not match")
    return None


def parse_events(request, session_id):
    """``(events, None)`` or ``(None, error response)``."""
    limit = conf.get("SCS_BROADCAST_MAX_BODY")
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    try:
        if declared > limit or len(request.body) > limit:
            return None, error(413, "TOO_LARGE", f"body is larger than {limit} bytes")
        body = json.loads(request.body)
    except RequestDataTooBig:
        return None, error(413, "TOO_LARGE", f"body is larger than {limit} bytes")
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser allows
        return None, error(400, "BAD_JSON", "body is not valid JSON")
    events = body.get("events") if isinstance(body, dict) and "events" in body else [body]
    if not isinstance(events, list) or not events:
        return None, error(400, "BAD_EVENT", "'events' must be a non-empty list")
    if len(events) > MAX_EVENTS:
        return None, error(413, "TOO_LARGE", f"at most {MAX_EVENTS} events per request")
    for event in events:
        problem = validate_event(event, session_id)
        if problem:
            return None, error(400, "BAD_EVENT", problem)
    return events, None


@csrf_exempt
@require_POST
async def broadcast(request, session_id):
    refusal = check_client(request) or check_secret(request)
    if refusal:
        return refusal
    if not is_session_id(session_id):
        return error(400, "INVALID_SESSION_ID", "session ids look like session_ + 16 hex characters")
    events, problem = parse_events(request, session_id)
    if problem:
        return problem
    if not await delivery.deliver(session_id, events):
        return error(404, "SESSION_NOT_FOUND", f"no session {session_id}")
    return JsonResponse({"success": True, "accepted": len(events)}, status=202)
