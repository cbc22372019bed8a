"""``POST /broadcast/<session_id>`` and ``POST /broadcast/`` as plain Django views (see ``realtime.live.broadcast``)."""

from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from realtime import conf
from realtime.live.broadcast import accept, accept_many, through_proxy


def door_request(request):
    """What the door needs of ``request``; the body is None when it is too large to read."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    body = None
    if declared <= conf.get("SCS_BROADCAST_MAX_BODY"):
        try:
            body = request.body
        except RequestDataTooBig:
            pass
    return {"client": request.META.get("REMOTE_ADDR", ""), "authorization": request.headers.get("Authorization", ""),
            "body": body, "proxied": through_proxy(name.lower() for name in request.headers)}


@csrf_exempt
@require_POST
async def broadcast(request, session_id):
    answer = await accept(session_id, **door_request(request))
    return JsonResponse(answer.body, status=answer.status)


@csrf_exempt
@require_POST
async def broadcast_many(request):
    answer = await accept_many(**door_request(request))
    return JsonResponse(answer.body, status=answer.status)
