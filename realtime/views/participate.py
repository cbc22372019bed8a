"""What signed-in people do on the pages: post to a session, create one; staff close, reopen and rename.

Every endpoint is a CSRF-protected POST, counted against the user's allowance
(``SCS_USER_POST_RATE`` per second, burst ``SCS_USER_POST_BURST``; past it 429 with
Retry-After), and goes through the same domain operations agents use, so a person's
message is stored and published exactly as an agent's. Each answers JSON, or, to a
browser's form post (``Accept: text/html``), a redirect (or the page again with the error).
"""

import functools
import math

from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from realtime import operations, session_state
from realtime.envelope import message_event
from realtime.errors import ErrorCode, OperationError
from realtime.fragments import page_event
from realtime.models import Visibility
from realtime.ratelimit import Limits
from realtime.views import pages
from realtime.visibility import Viewer, postable_levels

SENDER_TYPE = "human"
STATUS = {  # HTTP status of an operation's refusal; 400 otherwise
    ErrorCode.SESSION_NOT_FOUND: 404,
    ErrorCode.INVALID_SESSION_ID: 404,
    ErrorCode.PERMISSION_DENIED: 403,
    ErrorCode.SESSION_CLOSED: 409,
    ErrorCode.CONTENT_TOO_LARGE: 413,
    ErrorCode.SESSION_QUOTA_EXCEEDED: 429,
    ErrorCode.RATE_LIMITED: 429,
}

post_limits = Limits("SCS_USER_POST_RATE", "SCS_USER_POST_BURST")


def wants_page(request):
    """A browser's own form post (no script): it accepts HTML, so it gets a redirect or a page."""
    return "text/html" in request.headers.get("Accept", "")


def refusal(error: OperationError, **extra):
    response = JsonResponse({**error.as_dict(), **extra}, status=STATUS.get(error.code, 400))
    if "retry_after" in extra:
        response["Retry-After"] = str(extra["retry_after"])
    return response


def user_action(view):
    """Signed in, POST with a valid CSRF token (Django's middleware), within the user's allowance (else 429)."""

    @functools.wraps(view)
    @login_required
    @require_POST
    def wrapped(request, *args, **kwargs):
        wait = post_limits.take(request.user.get_username())
        if wait:
            seconds = max(1, math.ceil(wait))
            return refusal(OperationError(ErrorCode.RATE_LIMITED, "too many writes from this account; slow down",
                                          f"Wait {seconds} s and send again."), retry_after=seconds)
        return view(request, *args, **kwargs)

    return wrapped


def text_field(request, name):
    """A text field of the form as typed: browsers send a textarea's line breaks as CRLF."""
    return request.POST.get(name, "").replace("\r\n", "\n")


def parent_id(value):
    """The reply's parent id from the form ('' for none); PARENT_NOT_FOUND when it is not a message id."""
    value = (value or "").strip()
    if not value:
        return None
    if not (value.isascii() and value.isdigit() and len(value) <= 18):
        raise OperationError(ErrorCode.PARENT_NOT_FOUND, "parent_message_id must be a message id",
                             "Reply to a message shown on the page.")
    return int(value)


def check_visibility(viewer, visibility):
    """The visibility asked for, when ``viewer`` may post at it (``realtime.visibility.postable_levels``)."""
    if visibility not in Visibility.values:
        raise OperationError(ErrorCode.INVALID_VISIBILITY,
                             f"visibility must be one of {', '.join(Visibility.values)}", "Pick one the form offers.")
    if visibility not in postable_levels(viewer):
        raise OperationError(
            ErrorCode.PERMISSION_DENIED, f"you may not post {visibility} messages",
            f"You may post at: {', '.join(postable_levels(viewer))}.",
        )
    return visibility


@user_action
def post_message(request, session_id):
    """``POST /sessions/<id>/post``: content, visibility (default public), parent_message_id (optional)."""
    viewer = Viewer.for_user(request.user)
    content = text_field(request, "content")
    try:
        message = operations.add_message(
            session_id, sender=viewer.id, sender_type=SENDER_TYPE, content=content,
            visibility=check_visibility(viewer, request.POST.get("visibility") or Visibility.PUBLIC),
            parent_message_id=parent_id(request.POST.get("parent_message_id")),
            may_write_admin_only=viewer.is_admin,
        )
    except OperationError as error:
        if wants_page(request) and error.code not in (ErrorCode.SESSION_NOT_FOUND, ErrorCode.INVALID_SESSION_ID):
            session = operations.get_session(session_id)
            return pages.render_session(request, session, composer_error=error.message, draft=content,
                                        status=STATUS.get(error.code, 400))
        return refusal(error)
    if wants_page(request):
        return redirect(reverse("realtime:session", args=[session_id]) + f"#m{message.seq}")
    return JsonResponse({"success": True, "message_id": message.id, "seq": message.seq,
                         "message": page_event(message_event(message))}, status=201)


@user_action
def create_session(request):
    """``POST /sessions/new``: purpose; created by the signed-in user."""
    try:
        session = operations.create_session(text_field(request, "purpose"), request.user.get_username())
    except OperationError as error:
        if wants_page(request):
            return pages.render_dashboard(request, create_error=error.message,
                                          draft=text_field(request, "purpose"), status=STATUS.get(error.code, 400))
        return refusal(error)
    url = reverse("realtime:session", args=[session.id])
    if wants_page(request):
        return redirect(url)
    return JsonResponse({"success": True, "session_id": session.id, "url": url}, status=201)


def staff_change(request, session_id, **change):
    if not request.user.is_staff:
        return refusal(OperationError(ErrorCode.PERMISSION_DENIED, "only staff may change a session",
                                      "Ask a staff member."))
    try:
        session = session_state.change(session_id, by=request.user.get_username(), **change)
    except OperationError as error:
        return refusal(error)
    if wants_page(request):
        return redirect(reverse("realtime:session", args=[session.id]))
    return JsonResponse({"success": True, "session_id": session.id, "is_active": session.is_active,
                         "purpose": session.purpose})


@user_action
def close_session(request, session_id):
    """``POST /sessions/<id>/close`` (staff)."""
    return staff_change(request, session_id, is_active=False)


@user_action
def reopen_session(request, session_id):
    """``POST /sessions/<id>/reopen`` (staff)."""
    return staff_change(request, session_id, is_active=True)


@user_action
def edit_purpose(request, session_id):
    """``POST /sessions/<id>/purpose`` (staff): purpose."""
    return staff_change(request, session_id, purpose=text_field(request, "purpose"))
