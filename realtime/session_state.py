"""Staff's changes to a session: close it, reopen it, change its purpose; every open page is told.

A closed session takes no new message from anyone (``operations.add_message`` answers
``SESSION_CLOSED``) and stays readable. Each change is stored and audited in one
transaction; after the commit its ``session_state`` event (``realtime.envelope``) leaves
through this process's publisher, like a message: Daphne group-sends it to the session's
viewers and to the dashboard (``realtime.live.delivery``), whichever process made the change.
"""

import functools

from django.db import transaction

from realtime import audit, publisher
from realtime.envelope import state_event
from realtime.models import Session
from realtime.operations import check_purpose, get_session, sqlite_writer_turn


def change(session_id, *, by, is_active=None, purpose=None):
    """Set the session's open state and/or purpose (None: leave it); the Session, as saved.

    Nothing is stored or announced when nothing changes.
    """
    get_session(session_id)  # SESSION_NOT_FOUND / INVALID_SESSION_ID
    if purpose is not None:
        purpose = check_purpose(purpose)
    with sqlite_writer_turn(), transaction.atomic():
        # Read under the row's lock: two changes at once announce their states in the order they were stored.
        session = Session.objects.select_for_update().get(pk=session_id)
        changes = {}
        if is_active is not None and bool(is_active) != session.is_active:
            changes["is_active"] = bool(is_active)
        if purpose is not None and purpose != session.purpose:
            changes["purpose"] = purpose
        if not changes:
            return session
        # update(), not save(): updated_at is the session's activity (its newest message), not this change.
        Session.objects.filter(pk=session.pk).update(**changes)
        for name, value in changes.items():
            setattr(session, name, value)
        if "is_active" in changes:
            audit.record("session_reopened" if session.is_active else "session_closed", by, session.id)
        if "purpose" in changes:
            audit.record("session_purpose_changed", by, session.id, purpose=session.purpose[:200])
        announce_on_commit(session)
    return session


def announce_on_commit(session):
    """Publish ``session``'s state once the current transaction commits (at once outside one)."""
    transaction.on_commit(functools.partial(publisher.state_changed, state_event(session)), robust=True)


def close(session_id, *, by):
    return change(session_id, by=by, is_active=False)


def reopen(session_id, *, by):
    return change(session_id, by=by, is_active=True)


def set_purpose(session_id, purpose, *, by):
    return change(session_id, by=by, purpose=purpose)
