from channels.layers import get_channel_layer
from django.http import JsonResponse
from django.views.decorators.http import require_GET

from realtime.models import Session


@require_GET
async def health(request):
    """Liveness for Daphne: the database answers and the channel layer is configured."""
    try:
        sessions = await Session.objects.acount()
    except Exception:  # noqa: BLE001 - report any database failure as unhealthy
        return JsonResponse({"status": "error", "database": "unreachable"}, status=503)
    layer = type(get_channel_layer()).__name__
    return JsonResponse({"status": "ok", "sessions": sessions, "channel_layer": layer})
