"""``POST /broadcast/<session_id>`` as a plain Django view (see ``realtime.live.broadcast``)."""

from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from realtime import conf
from realtime.live.broadcast import accept, through_proxy


@csrf_exempt
@require_POST
async def broadcast(request, session_id):
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    body = None  # too large to read
    if declared <= conf.get("SCS_BROADCAST_MAX_BODY"):
        try:
            body = request.body
        except RequestDataTooBig:
            pass
    answer = await accept(
        session_id, client=request.META.get("REMOTE_ADDR", ""),
        authorization=request.headers.get("Authorization", ""), body=body,
        proxied=through_proxy(name.lower() for name in request.headers),
    )
    return JsonResponse(answer.body, status=answer.status)
