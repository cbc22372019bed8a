"""``POST /broadcast/<session_id>``: the sidecar's door into the channel layer.

Body: one event envelope, or ``{"events": [...]}`` for one session. Requires
``Authorization: Bearer <SCS_BROADCAST_SECRET>``. Answers 202 with the number of
events group-sent; every bad request gets a JSON error, never a 500.
"""

import hmac
import json
import logging

from channels.layers import get_channel_layer
from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from realtime import conf
from realtime.consumers import session_group
from realtime.envelope import validate_event
from realtime.models import Session, is_session_id

logger = logging.getLogger(__name__)

MAX_EVENTS = 1000


def error(status, code, message):
    return JsonResponse({"success": False, "error": message, "code": code}, status=status)


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
    except (ValueError, UnicodeDecodeError):
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
    refusal = check_secret(request)
    if refusal:
        return refusal
    if not is_session_id(session_id):
        return error(400, "INVALID_SESSION_ID", "session ids look like session_ + 16 hex characters")
    events, problem = parse_events(request, session_id)
    if problem:
        return problem
    if not await Session.objects.filter(pk=session_id).aexists():
        return error(404, "SESSION_NOT_FOUND", f"no session {session_id}")
    events.sort(key=lambda event: event["seq"])
    await get_channel_layer().group_send(session_group(session_id), {"type": "session.events", "events": events})
    return JsonResponse({"success": True, "accepted": len(events)}, status=202)
