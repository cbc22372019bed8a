"""Which memory entries a staff page lists: the memory page's filters, as a query and as a predicate.

The page reads with ``query()``; its live socket (``realtime.live.memory``) forwards an
entry only when ``matches`` it, so what arrives live is what a reload would show.
"""

from dataclasses import dataclass

from django.db.models import Q
from django.utils import timezone

from realtime.timestamps import isoformat

SEARCH_CHARS = 200
AGENT_CHARS = 100
SCOPES = ("global", "session")


@dataclass(frozen=True)
class MemoryFilter:
    agent: str = ""
    scope: str = ""  # "", "global" or "session"
    query: str = ""  # in the key or the session id, any case
    show_expired: bool = False
    session_id: str = ""  # the session page's tab: that session's entries only

    @classmethod
    def from_params(cls, params):
        """From a page's query string (``request.GET``, or a dict of lists from ``parse_qs``)."""
        def value(name):
            found = params.get(name, "")
            return (found[-1] if isinstance(found, list) and found else found if isinstance(found, str) else "")

        scope = value("scope")
        return cls(agent=value("agent").strip()[:AGENT_CHARS], scope=scope if scope in SCOPES else "",
                   query=value("q").strip()[:SEARCH_CHARS], show_expired=value("expired") == "1")

    def q(self, now=None):
        rule = Q()
        if self.agent:
            rule &= Q(agent_id=self.agent)
        if self.query:
            rule &= Q(key__icontains=self.query) | Q(session__id__icontains=self.query)
        if self.scope == "global":
            rule &= Q(session__isnull=True)
        elif self.scope == "session":
            rule &= Q(session__isnull=False)
        if self.session_id:
            rule &= Q(session_id=self.session_id)
        if not self.show_expired:
            rule &= Q(expires_at__isnull=True) | Q(expires_at__gt=now or timezone.now())
        return rule

    def matches(self, record, now=None):
        """The same rule over a memory record (``realtime.envelope.memory_record``)."""
        session_id = record["session_id"] or ""
        query = self.query.lower()
        expires_at = record["expires_at"]
        return ((not self.agent or record["agent_id"] == self.agent)
                and (not query or query in record["key"].lower() or query in session_id.lower())
                and (self.scope != "global" or not session_id) and (self.scope != "session" or session_id)
                and (not self.session_id or session_id == self.session_id)
                and (self.show_expired or expires_at is None or expires_at > isoformat(now or timezone.now())))
