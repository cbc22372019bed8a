"""``GET /health``: liveness for anyone, details for the operator.

Without credentials the answer is only ``{"status": "ok"}`` (or 503 with
``"status": "error"``), enough for a load balancer's probe. With
``Authorization: Bearer <SCS_BROADCAST_SECRET>`` it adds the session count and the
channel layer in use. Any other credential (an agent's token, a wrong secret) gets
the open answer, so a probe that sends one still works.
"""

from channels.layers import get_channel_layer
from django.http import JsonResponse
from django.views.decorators.http import require_GET

from realtime.models import Session
from realtime.shared_secret import holds_secret


@require_GET
async def health(request):
    """The database answers; with the operator secret, what the process serves."""
    detailed = holds_secret(request.headers.get("Authorization", ""))
    try:
        sessions = await Session.objects.acount() if detailed else await Session.objects.aexists()
    except Exception:  # noqa: BLE001 - report any database failure as unhealthy
        body = {"status": "error", "database": "unreachable"} if detailed else {"status": "error"}
        return JsonResponse(body, status=503)
    if not detailed:
        return JsonResponse({"status": "ok"})
    return JsonResponse({"status": "ok", "sessions": sessions, "channel_layer": type(get_channel_layer()).__name__})
