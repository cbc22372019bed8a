"""The one visibility rule: ``can_see`` over the full matrix, and ``visible_q`` agreeing with it."""

import itertools
from types import SimpleNamespace

import pytest

from realtime.models import Message, Session, Visibility
from realtime.visibility import Viewer, can_see, can_see_message, visible_q

SENDER = ("alice", "claude")

VIEWERS = {
    "sender": Viewer.for_agent("alice", "claude", ["read", "write"]),
    "same_type": Viewer.for_agent("bob", "claude", ["read", "write"]),
    "other_type": Viewer.for_agent("gina", "gemini", ["read", "write"]),
    "admin_agent": Viewer.for_agent("root", "admin", ["read", "write", "admin"]),
    "staff_user": Viewer.for_user(SimpleNamespace(get_username=lambda: "carol", is_staff=True)),
    "user": Viewer.for_user(SimpleNamespace(get_username=lambda: "dave", is_staff=False)),
    "public_reader": Viewer.public_reader(),
}

# visibility -> the viewers (of a message sent by alice, a claude agent) who may read it.
EXPECTED = {
    Visibility.PUBLIC: {"sender", "same_type", "other_type", "admin_agent", "staff_user", "user", "public_reader"},
    Visibility.PRIVATE: {"sender", "admin_agent", "staff_user"},
    Visibility.AGENT_ONLY: {"sender", "same_type", "admin_agent", "staff_user"},
    Visibility.ADMIN_ONLY: {"admin_agent", "staff_user"},
}

MATRIX = [
    (visibility, name, name in allowed)
    for visibility, allowed in EXPECTED.items()
    for name in VIEWERS
]


def test_matrix_covers_every_level_and_viewer():
    assert set(EXPECTED) == set(Visibility.values)
    assert len(MATRIX) == 4 * 7


@pytest.mark.parametrize(("visibility", "viewer", "allowed"), MATRIX, ids=[f"{v}-{n}" for v, n, _ in MATRIX])
def test_can_see(visibility, viewer, allowed):
    assert can_see(VIEWERS[viewer], visibility, *SENDER) is allowed


@pytest.mark.parametrize(("visibility", "viewer", "allowed"), MATRIX, ids=[f"{v}-{n}" for v, n, _ in MATRIX])
def test_can_see_message_reads_envelope_data(visibility, viewer, allowed):
    data = {"visibility": visibility, "sender": SENDER[0], "sender_type": SENDER[1], "content": "x"}
    assert can_see_message(VIEWERS[viewer], data) is allowed


def test_unknown_visibility_is_hidden_from_everyone_but_admins():
    seen_by = {name for name, viewer in VIEWERS.items() if can_see(viewer, "secret-ish", *SENDER)}
    assert seen_by == {"admin_agent", "staff_user"}


def test_agent_without_admin_permission_is_not_an_admin_whatever_its_type():
    demoted = Viewer.for_agent("root", "admin", ["read"])
    assert not can_see(demoted, Visibility.ADMIN_ONLY, "root", "admin")
    assert not can_see(demoted, Visibility.PRIVATE, "alice", "claude")


def test_user_visibility_setting_never_opens_private(settings):
    settings.SCS_USER_VISIBILITY = ["public", "agent_only", "private", "bogus"]
    user = VIEWERS["user"]
    assert can_see(user, Visibility.AGENT_ONLY, *SENDER)
    assert not can_see(user, Visibility.PRIVATE, *SENDER)
    assert not can_see(user, Visibility.ADMIN_ONLY, *SENDER)


# visible_q against the database: every (sender, visibility) combination once.

SENDERS = [("alice", "claude"), ("bob", "claude"), ("gina", "gemini"), ("root", "admin")]


@pytest.fixture
def matrix_messages(db):
    session = Session.objects.create(purpose="visibility matrix", created_by="alice")
    other = Session.objects.create(purpose="another session", created_by="bob")
    messages = []
    for seq, ((sender, sender_type), visibility) in enumerate(
        itertools.product(SENDERS, Visibility.values), start=1
    ):
        messages.append(Message.objects.create(
            session=session, seq=seq, sender=sender, sender_type=sender_type,
            content=f"{visibility} from {sender}", visibility=visibility,
        ))
    Message.objects.create(session=other, seq=1, sender="gina", sender_type="gemini", content="x",
                           visibility=Visibility.PRIVATE)
    return session, other, messages


@pytest.mark.parametrize("viewer", list(VIEWERS))
def test_visible_q_selects_exactly_what_can_see_allows(matrix_messages, viewer):
    session, _, messages = matrix_messages
    expected = {m.pk for m in messages if can_see_message(VIEWERS[viewer], m)}
    selected = set(Message.objects.filter(session=session).filter(visible_q(VIEWERS[viewer])).values_list(
        "pk", flat=True))
    assert selected == expected
    assert expected  # every viewer reads at least the public messages


@pytest.mark.parametrize("viewer", list(VIEWERS))
def test_visible_q_with_prefix_works_through_a_join(matrix_messages, viewer):
    session, other, _ = matrix_messages
    sessions = set(Session.objects.filter(visible_q(VIEWERS[viewer], prefix="messages__")).values_list(
        "pk", flat=True))
    # The other session's only message is gina's private one.
    expected_other = can_see(VIEWERS[viewer], Visibility.PRIVATE, "gina", "gemini")
    assert sessions == ({session.pk, other.pk} if expected_other else {session.pk})


def test_visible_q_follows_the_user_visibility_setting(matrix_messages, settings):
    session, _, messages = matrix_messages
    settings.SCS_USER_VISIBILITY = ["public", "agent_only", "private"]
    user = VIEWERS["user"]
    selected = set(Message.objects.filter(session=session).filter(visible_q(user)).values_list("pk", flat=True))
    assert selected == {m.pk for m in messages if can_see_message(user, m)}
    assert {m.visibility for m in messages if m.pk in selected} == {Visibility.PUBLIC, Visibility.AGENT_ONLY}
