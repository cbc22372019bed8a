"""Host code that publishes into a session, as a team's own view would."""

from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.views.decorators.http import require_POST

from realtime import publish
from realtime.errors import OperationError


@require_POST
@login_required
def announce(request, session_id):
    try:
        message = publish.add_message(
            session_id, request.POST.get("text", ""), sender=request.user.get_username(), sender_type="human"
        )
    except OperationError as exc:
        return JsonResponse(exc.as_dict(), status=400)
    return JsonResponse({"success": True, "seq": message.seq})
