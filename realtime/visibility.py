"""Who may see which message: the one rule, used by every read path.

- ``public``: everyone;
- ``private``: the sending agent only;
- ``agent_only``: agents of the sender's type;
- ``admin_only``: admins (agents holding the ``admin`` permission, staff users).

Non-staff browser users see the levels in ``SCS_USER_VISIBILITY`` (default:
public only); a ``public`` reader (a client that names no one, e.g. a resource read
with the shared key and no token) sees public messages only. ``can_see`` answers
for one message; ``visible_q`` is the same rule as a database filter.
``tests/test_visibility.py`` checks that they agree.
"""

from dataclasses import dataclass

from django.db.models import Q

from realtime import conf
from realtime.models import Visibility


@dataclass(frozen=True)
class Viewer:
    """Someone reading messages: an agent (from its token) or a browser user."""

    kind: str  # "agent" or "user"
    id: str
    agent_type: str = ""
    is_admin: bool = False
    permissions: tuple = ()

    @classmethod
    def for_agent(cls, agent_id, agent_type, permissions):
        perms = tuple(permissions)
        return cls("agent", agent_id, agent_type, "admin" in perms, perms)

    @classmethod
    def for_user(cls, user):
        return cls("user", user.get_username(), "", bool(user.is_staff), ())

    @classmethod
    def public_reader(cls):
        return cls("public", "")

    def describe(self):
        return {"kind": self.kind, "id": self.id, "agent_type": self.agent_type, "is_admin": self.is_admin}


def _user_levels():
    return set(conf.get("SCS_USER_VISIBILITY")) & set(Visibility.values)


def can_see(viewer: Viewer, visibility, sender, sender_type):
    """True when ``viewer`` may read a message with these fields."""
    if viewer.is_admin or visibility == Visibility.PUBLIC:
        return True
    if viewer.kind == "public":
        return False
    if viewer.kind == "user":
        return visibility in _user_levels() and visibility != Visibility.PRIVATE
    if visibility == Visibility.PRIVATE:
        return sender == viewer.id
    if visibility == Visibility.AGENT_ONLY:
        return sender_type == viewer.agent_type
    return False


def visible_q(viewer: Viewer, prefix=""):
    """The ``can_see`` rule as a ``Q`` over Message fields (``prefix`` for joins)."""

    def f(name):
        return f"{prefix}{name}"

    if viewer.is_admin:
        return Q()
    if viewer.kind == "public":
        return Q(**{f("visibility"): Visibility.PUBLIC})
    if viewer.kind == "user":
        levels = (_user_levels() - {Visibility.PRIVATE}) | {Visibility.PUBLIC}
        return Q(**{f("visibility__in"): sorted(levels)})
    return (
        Q(**{f("visibility"): Visibility.PUBLIC})
        | Q(**{f("visibility"): Visibility.PRIVATE, f("sender"): viewer.id})
        | Q(**{f("visibility"): Visibility.AGENT_ONLY, f("sender_type"): viewer.agent_type})
    )


def can_see_message(viewer: Viewer, message):
    """``can_see`` for a Message instance or an envelope's ``data`` dict."""
    if isinstance(message, dict):
        return can_see(viewer, message.get("visibility"), message.get("sender"), message.get("sender_type"))
    return can_see(viewer, message.visibility, message.sender, message.sender_type)


def postable_levels(viewer: Viewer):
    """The levels ``viewer`` may post at, in ``Visibility`` order: those it could read back from itself.

    A signed-in person who is not staff gets public plus what ``SCS_USER_VISIBILITY`` grants (never
    ``private``, which only admins read in the browser); staff get every level.
    """
    return [level for level in Visibility.values if can_see(viewer, level, viewer.id, viewer.agent_type)]
