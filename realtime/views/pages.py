"""The pages people watch sessions through: dashboard, session, memory; a session's export.

What people do on them (post, create, close) is in ``realtime.views.participate``.

Every page reads messages through ``visible_messages``/``visible_q``, the same
rule the WebSocket applies, so what a page shows first and what arrives live
always agree. Messages and memory entries are built by ``realtime.fragments``,
for the first render and the live frames alike; templates autoescape everything.
"""


from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Case, Count, F, Max, OuterRef, Q, Subquery, When
from django.db.models.functions import Coalesce
from django.http import Http404, JsonResponse, StreamingHttpResponse
from django.utils import timezone

from realtime import export
from realtime.envelope import memory_record, message_event
from realtime.errors import OperationError
from realtime.fragments import memory_row_html, message_html, page_event, pretty_json
from realtime.memory_filter import MemoryFilter
from realtime.models import MemoryEntry, Message, Session
from realtime.operations import get_session, visible_messages
from realtime.views.context import render
from realtime.visibility import Viewer, postable_levels, visible_q

FIRST_RENDER = 200  # newest messages rendered with the page; older ones load on demand
OLDER_PAGE = 200  # messages per "load earlier" request
PAGE_SIZE = 50  # sessions per dashboard page
MEMORY_PAGE_SIZE = 100
SESSION_MEMORY_ROWS = 500  # memory entries the session page's tab lists
MAX_DEPTH = 4  # replies nest this deep (session.js); deeper replies sit under their nearest shown ancestor
SEARCH_CHARS = 200


def search_term(request):
    return request.GET.get("q", "").strip()[:SEARCH_CHARS]


def visible_tallies(viewer, session_ids):
    """``{session_id: (count, newest timestamp, sorted sender names)}`` over the messages ``viewer`` may see."""
    rows = (
        Message.objects.filter(session_id__in=session_ids)
        .filter(visible_q(viewer))
        .order_by()
        .values_list("session_id", "sender")
        .annotate(count=Count("id"), newest=Max("timestamp"))
    )
    tallies = {}
    for session_id, sender, count, newest in rows:
        total, latest, senders = tallies.get(session_id, (0, newest, []))
        senders.append(sender)
        tallies[session_id] = (total + count, max(latest, newest), senders)
    return {key: (count, newest, sorted(senders, key=str.lower)) for key, (count, newest, senders) in tallies.items()}


def dashboard_sessions(viewer, sessions):
    """``sessions`` as ``viewer`` is shown them, newest activity it may see first: a queryset or a list.

    A session is listed when the viewer may see one of its messages (its activity is
    the newest of those), or when it has none yet (its activity is its creation):
    one holding only messages the viewer may not see is not listed, as it never
    appears live (``realtime.live.dashboard``).
    """
    rule = visible_q(viewer)
    if not rule:  # the viewer sees every message: the session's own activity, from its index
        return sessions.order_by("-updated_at", "-pk")
    newest_visible = Message.objects.filter(rule, session=OuterRef("pk")).order_by("-seq").values("timestamp")[:1]
    # Selected once per session and sorted here: in the ORDER BY, the WHERE and the paginator's
    # COUNT the subquery ran three times per session, which doubled the render time.
    rows = sessions.annotate(activity=Coalesce(Subquery(newest_visible), Case(When(last_seq=0, then="created_at"))))
    listed = [(activity, pk) for pk, activity in rows.values_list("pk", "activity") if activity is not None]
    listed.sort(reverse=True)
    return [pk for _, pk in listed]


STATES = {"open": True, "closed": False}  # ?state=: the dashboard's filter
STATE_CHOICES = [("", "All"), ("open", "Open"), ("closed", "Closed")]


@login_required
def dashboard(request):
    return render_dashboard(request)


def render_dashboard(request, *, create_error="", draft="", status=200):
    """The dashboard (``?q=`` search, ``?state=open|closed``, ``?page=``); with the new-session form's error."""
    query = search_term(request)
    state = request.GET.get("state", "")
    state = state if state in STATES else ""
    viewer = Viewer.for_user(request.user)
    sessions = Session.objects.all()
    if query:
        sessions = sessions.filter(
            Q(purpose__icontains=query) | Q(created_by__icontains=query) | Q(id__icontains=query)
        )
    if state:
        sessions = sessions.filter(is_active=STATES[state])
    ordered = dashboard_sessions(viewer, sessions)
    page = Paginator(ordered, PAGE_SIZE).get_page(request.GET.get("page"))
    if isinstance(ordered, list):  # session ids: fetch this page's sessions
        found = Session.objects.in_bulk(page.object_list)
        page.object_list = [found[pk] for pk in page.object_list if pk in found]
    tallies = visible_tallies(viewer, [session.id for session in page.object_list])
    sees_all = not visible_q(viewer)
    for session in page.object_list:
        count, newest, session.agents = tallies.get(session.id, (0, None, []))
        if sees_all:  # last_seq and updated_at are exact and cost no counting
            session.visible_count, session.activity = session.last_seq, session.updated_at
        else:
            session.visible_count, session.activity = count, newest or session.created_at
    context = {"page": page, "sessions": page.object_list, "query": query, "state": state, "nav": "sessions",
               "state_choices": STATE_CHOICES, "create_error": create_error, "draft": draft}
    return render(request, "realtime/dashboard.html", context, status=status)


def session_or_404(session_id):
    try:
        return get_session(session_id)
    except OperationError:
        raise Http404("No such session") from None


@login_required
def session_detail(request, session_id):
    return render_session(request, session_or_404(session_id))


def render_session(request, session, *, composer_error="", draft="", status=200):
    """The session page; ``composer_error`` and ``draft``: a post refused without script, shown with its text."""
    viewer = Viewer.for_user(request.user)
    shown = visible_messages(viewer, session.id).filter(seq__lte=session.last_seq)
    newest = list(shown.order_by("-seq")[:FIRST_RENDER])
    newest.reverse()
    earlier = newest[0].seq if len(newest) == FIRST_RENDER and shown.filter(seq__lt=newest[0].seq).exists() else 0
    return render(
        request,
        "realtime/session.html",
        {
            "session": session,
            "messages": [message_html(message_event(message)) for message in newest],
            "shown_count": len(newest),
            "last_seq": session.last_seq,
            "earlier_before": earlier,
            "metadata_json": pretty_json(session.metadata) if session.metadata else "",
            "memory_rows": session_memory_rows(request.user, session.id),
            "max_depth": MAX_DEPTH,
            "nav": "sessions",
            "levels": postable_levels(viewer),
            "composer_error": composer_error,
            "draft": draft,
            "export_formats": list(export.FORMATS),
        },
        status=status,
    )


@login_required
def session_export(request, session_id, fmt):
    """``GET …/export.md`` or ``…/export.json``: the session as this user may see it, as a download."""
    if fmt not in export.FORMATS:
        raise Http404("No such format")
    session = session_or_404(session_id)
    response = StreamingHttpResponse(export.export(session, fmt, Viewer.for_user(request.user)),
                                     content_type=export.FORMATS[fmt])
    response["Content-Disposition"] = f'attachment; filename="{session.id}.{fmt}"'
    return response


@login_required
def session_messages(request, session_id):
    """``GET …/messages?before=<seq>``: the visible messages just before ``seq``, as envelopes with their ``html``."""
    session = session_or_404(session_id)
    before = request.GET.get("before", "")
    if not (before.isascii() and before.isdigit()) or len(before) > 18:
        return JsonResponse({"success": False, "error": "before must be a positive integer seq"}, status=400)
    shown = visible_messages(Viewer.for_user(request.user), session.id).filter(seq__lt=int(before))
    page = list(shown.order_by("-seq")[: OLDER_PAGE + 1])
    has_more = len(page) > OLDER_PAGE
    page = page[:OLDER_PAGE]
    page.reverse()
    events = [page_event(message_event(message)) for message in page]
    return JsonResponse({"success": True, "messages": events, "has_more": has_more})


def session_memory_rows(user, session_id):
    """The session's unexpired memory entries as rows, for staff (the memory tab); None for anyone else."""
    if not user.is_staff:
        return None
    now = timezone.now()
    entries = MemoryEntry.objects.filter(MemoryFilter(session_id=session_id).q(now)).order_by("agent_id", "key")
    return [memory_row_html(memory_record(entry), now) for entry in entries[:SESSION_MEMORY_ROWS]]


@login_required
def memory(request):
    if not request.user.is_staff:
        raise PermissionDenied("The memory page is for staff.")
    chosen = MemoryFilter.from_params(request.GET)
    now = timezone.now()
    # Global entries first on every database, as memory.js places live rows (realtime.fragments: data-order).
    entries = MemoryEntry.objects.filter(chosen.q(now)).order_by("agent_id", F("session_id").asc(nulls_first=True),
                                                                  "key")
    page = Paginator(entries, MEMORY_PAGE_SIZE).get_page(request.GET.get("page"))
    rows = [memory_row_html(memory_record(entry), now) for entry in page]
    agents = MemoryEntry.objects.order_by("agent_id").values_list("agent_id", flat=True).distinct()[:500]
    return render(
        request,
        "realtime/memory.html",
        {
            "page": page,
            "rows": rows,
            "query": chosen.query,
            "agent": chosen.agent,
            "scope": chosen.scope,
            "show_expired": chosen.show_expired,
            "agents": list(agents),
            "nav": "memory",
        },
    )
