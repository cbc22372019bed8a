"""Domain operations on sessions and messages, shared by the sidecar, the UI and host code.

Each takes already-typed arguments, enforces the limits, and raises
``OperationError`` with a stable code and a hint. Storing a message numbers it
inside its transaction and announces it (``signals.message_stored``) only after
the commit, so nothing that was rolled back is ever broadcast.
"""

import functools
import json

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from realtime import audit, conf
from realtime.envelope import message_event
from realtime.errors import OperationError
from realtime.models import Message, Session, Visibility, is_session_id
from realtime.signals import message_stored
from realtime.visibility import Viewer, visible_q


def check_session_id(session_id):
    if not is_session_id(session_id):
        raise OperationError(
            "INVALID_SESSION_ID",
            "session_id is not a valid session id",
            "Session ids look like 'session_' followed by 16 hex characters, as create_session returns them.",
        )


def check_metadata(metadata):
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise OperationError("INVALID_METADATA", "metadata must be a JSON object", "Pass an object, e.g. {\"k\": 1}.")
    limit = conf.get("SCS_MAX_METADATA_BYTES")
    if len(json.dumps(metadata, separators=(",", ":"))) > limit:
        raise OperationError("METADATA_TOO_LARGE", f"metadata is larger than {limit} bytes", "Store less metadata.")
    return metadata


def create_session(purpose, created_by, metadata=None):
    purpose = (purpose or "").strip()
    limit = conf.get("SCS_MAX_PURPOSE_LENGTH")
    if not purpose:
        raise OperationError(
            "INVALID_PURPOSE", "purpose must not be empty", "Say in a sentence what the session is for."
        )
    if len(purpose) > limit:
        raise OperationError("INVALID_PURPOSE", f"purpose is longer than {limit} characters", "Shorten the purpose.")
    metadata = check_metadata(metadata)
    with transaction.atomic():
        session = Session.objects.create(purpose=purpose, created_by=created_by, metadata=metadata)
        audit.record("session_created", created_by, session.id, purpose=purpose[:200])
    return session


def get_session(session_id):
    check_session_id(session_id)
    try:
        return Session.objects.get(pk=session_id)
    except Session.DoesNotExist:
        raise OperationError(
            "SESSION_NOT_FOUND", f"no session {session_id}", "Check the id, or create one with create_session."
        ) from None


def add_message(session_id, *, sender, sender_type, content, visibility=Visibility.PUBLIC, metadata=None,
                parent_message_id=None, may_write_admin_only=False):
    """Store a message with the session's next seq; return the Message."""
    check_session_id(session_id)
    if visibility not in Visibility.values:
        raise OperationError(
            "INVALID_VISIBILITY", f"visibility must be one of {', '.join(Visibility.values)}",
            "Use 'public' unless the message must be hidden from some readers.",
        )
    if visibility == Visibility.ADMIN_ONLY and not may_write_admin_only:
        raise OperationError(
            "PERMISSION_DENIED", "admin_only messages need the admin permission",
            "Use another visibility, or authenticate as an agent type that holds 'admin'.",
        )
    if not isinstance(content, str) or not content.strip():
        raise OperationError("INVALID_CONTENT", "content must be a non-empty string", "Send some text.")
    limit = conf.get("SCS_MAX_CONTENT_LENGTH")
    if len(content) > limit:
        raise OperationError(
            "CONTENT_TOO_LARGE", f"content is longer than {limit} characters", "Split it into several messages."
        )
    metadata = check_metadata(metadata)
    with transaction.atomic():
        if parent_message_id is not None and not Message.objects.filter(
            pk=parent_message_id, session_id=session_id
        ).exists():
            raise OperationError(
                "PARENT_NOT_FOUND", f"message {parent_message_id} is not in session {session_id}",
                "parent_message_id must be the id of a message in the same session.",
            )
        now = timezone.now()
        if not Session.objects.filter(pk=session_id, is_active=True).update(last_seq=F("last_seq") + 1, updated_at=now):
            get_session(session_id)  # raises SESSION_NOT_FOUND when absent
            raise OperationError("SESSION_INACTIVE", f"session {session_id} is closed", "Create a new session.")
        seq = Session.objects.filter(pk=session_id).values_list("last_seq", flat=True).get()
        message = Message.objects.create(
            session_id=session_id, seq=seq, sender=sender, sender_type=sender_type, content=content,
            visibility=visibility, metadata=metadata, parent_id=parent_message_id, timestamp=now,
        )
        if visibility == Visibility.ADMIN_ONLY:
            audit.record("admin_only_message", sender, session_id, message_id=message.id)
        transaction.on_commit(
            functools.partial(message_stored.send, sender=Message, event=message_event(message)), robust=True
        )
    return message


def visible_messages(viewer: Viewer, session_id):
    """The queryset of messages in ``session_id`` that ``viewer`` may read, in seq order."""
    return Message.objects.filter(session_id=session_id).filter(visible_q(viewer)).order_by("seq")


def thread_ids(session_id, root_id, limit=1000):
    """Ids of ``root_id`` and every reply below it (breadth first, at most ``limit``)."""
    ids, frontier = [root_id], [root_id]
    while frontier and len(ids) < limit:
        frontier = list(
            Message.objects.filter(session_id=session_id, parent_id__in=frontier).values_list("pk", flat=True)
        )
        ids.extend(frontier)
    return ids[:limit]


def list_messages(viewer: Viewer, session_id, *, limit=50, offset=0, visibility_filter=None, since_seq=None,
                  thread_id=None):
    """A page of visible messages in seq order; returns ``(messages, has_more)``."""
    get_session(session_id)
    queryset = visible_messages(viewer, session_id)
    if visibility_filter is not None:
        if visibility_filter not in Visibility.values:
            raise OperationError(
                "INVALID_VISIBILITY", f"visibility_filter must be one of {', '.join(Visibility.values)}",
                "Leave it out to get every level you may read.",
            )
        queryset = queryset.filter(visibility=visibility_filter)
    if since_seq is not None:
        queryset = queryset.filter(seq__gt=since_seq)
    if thread_id is not None:
        queryset = queryset.filter(pk__in=thread_ids(session_id, thread_id))
    page = list(queryset[offset : offset + limit + 1])
    return page[:limit], len(page) > limit
