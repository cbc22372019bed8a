"""The pages people watch sessions through."""

from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import Http404
from django.shortcuts import render

from realtime.errors import OperationError
from realtime.models import Session
from realtime.operations import get_session, visible_messages
from realtime.visibility import Viewer

FIRST_RENDER = 200  # newest messages rendered with the page; older ones load on demand


@login_required
def dashboard(request):
    sessions = Session.objects.annotate(message_count=Count("messages")).order_by("-updated_at")[:50]
    return render(request, "realtime/dashboard.html", {"sessions": sessions})


@login_required
def session_detail(request, session_id):
    try:
        session = get_session(session_id)
    except OperationError:
        raise Http404("No such session") from None
    viewer = Viewer.for_user(request.user)
    shown = visible_messages(viewer, session.id).filter(seq__lte=session.last_seq)
    newest = list(shown.order_by("-seq")[:FIRST_RENDER])
    newest.reverse()
    return render(
        request,
        "realtime/session.html",
        {"session": session, "messages": newest, "last_seq": session.last_seq},
    )
