"""Sessions, their numbered messages, read cursors and mentions, agents' private memory, and the audit log."""

import re
import secrets

from django.db import models

SESSION_ID_RE = re.compile(r"^session_[0-9a-f]{16}$")


def new_session_id():
    return f"session_{secrets.token_hex(8)}"


def is_session_id(value):
    return isinstance(value, str) and SESSION_ID_RE.fullmatch(value) is not None


class Visibility(models.TextChoices):
    PUBLIC = "public", "Public"
    PRIVATE = "private", "Private (sender only)"
    AGENT_ONLY = "agent_only", "Agents of the sender's type"
    ADMIN_ONLY = "admin_only", "Admins only"


class Session(models.Model):
    id = models.CharField(primary_key=True, max_length=24, default=new_session_id, editable=False)
    purpose = models.TextField()
    created_by = models.CharField(max_length=100)
    metadata = models.JSONField(default=dict, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)
    # Seq of the newest message; the next message gets last_seq + 1.
    last_seq = models.PositiveBigIntegerField(default=0)
    # Seq of the newest message some publisher handed to Daphne or the channel layer (realtime.announce).
    # Below last_seq: something committed was not announced yet, and a sweeper will.
    announced_seq = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["-updated_at"]
        indexes = [
            # Only sessions with something unannounced: the sweeper's query reads this small index, never
            # the sessions that are up to date (nearly all of them).
            models.Index(
                fields=["updated_at"], condition=models.Q(last_seq__gt=models.F("announced_seq")),
                name="session_unannounced",
            ),
        ]

    def __str__(self):
        return f"{self.id} ({self.purpose[:40]})"


class Message(models.Model):
    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="messages")
    seq = models.PositiveBigIntegerField()
    sender = models.CharField(max_length=100, db_index=True)
    sender_type = models.CharField(max_length=50)
    content = models.TextField()
    visibility = models.CharField(max_length=16, choices=Visibility.choices, default=Visibility.PUBLIC)
    metadata = models.JSONField(default=dict, blank=True)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="replies")
    timestamp = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["session", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["session", "seq"], name="message_unique_seq_per_session"),
        ]
        indexes = [
            models.Index(fields=["session", "sender"], name="message_session_sender"),
            models.Index(fields=["session", "timestamp"], name="message_session_time"),
        ]

    def __str__(self):
        return f"{self.session_id}#{self.seq} from {self.sender}"


class ReadCursor(models.Model):
    """How far one agent has read one session: every message up to ``seq`` (``realtime.read_cursors``)."""

    agent_id = models.CharField(max_length=100)
    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="read_cursors")
    seq = models.PositiveBigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["agent_id", "session"], name="read_cursor_unique_per_agent"),
        ]

    def __str__(self):
        return f"{self.agent_id} read {self.session_id} to #{self.seq}"


class Inbox(models.Model):
    """One agent's inbox: the position of its newest mention; the next mention gets ``last_seq + 1``."""

    agent_id = models.CharField(primary_key=True, max_length=100)
    last_seq = models.PositiveBigIntegerField(default=0)

    class Meta:
        verbose_name_plural = "inboxes"

    def __str__(self):
        return f"{self.agent_id} ({self.last_seq} mentions)"


class Mention(models.Model):
    """One agent named by one message (``realtime.mentions``), stored with the message (``realtime.inbox``).

    ``seq`` is the mention's position in the agent's inbox, taken under the agent's Inbox row
    inside the message's transaction: in commit order, so a reader's cursor never skips one.
    """

    agent_id = models.CharField(max_length=100)
    seq = models.PositiveBigIntegerField()
    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="+")
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="mentions")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["agent_id", "seq"], name="mention_unique_seq_per_agent"),
        ]

    def __str__(self):
        return f"{self.agent_id} #{self.seq} in {self.session_id}"


class MemoryEntry(models.Model):
    """One agent's private value under a key, global (no session) or per session."""

    agent_id = models.CharField(max_length=100)
    key = models.CharField(max_length=255)
    session = models.ForeignKey(Session, null=True, blank=True, on_delete=models.CASCADE, related_name="memory")
    value = models.JSONField()
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        verbose_name_plural = "memory entries"
        ordering = ["agent_id", "key"]
        constraints = [
            models.UniqueConstraint(
                fields=["agent_id", "session", "key"], name="memory_unique_key_per_scope"
            ),
            models.UniqueConstraint(
                fields=["agent_id", "key"],
                condition=models.Q(session__isnull=True),
                name="memory_unique_global_key",
            ),
        ]
        indexes = [models.Index(fields=["agent_id", "key"], name="memory_agent_key")]

    def __str__(self):
        return f"{self.agent_id}:{self.key}"


class AuditEvent(models.Model):
    """Who did what, when: authentications, session creation, admin writes, refusals."""

    timestamp = models.DateTimeField(auto_now_add=True, db_index=True)
    event_type = models.CharField(max_length=50, db_index=True)
    agent_id = models.CharField(max_length=100, blank=True, db_index=True)
    session_id = models.CharField(max_length=24, blank=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-timestamp"]

    def __str__(self):
        return f"{self.timestamp:%Y-%m-%d %H:%M:%S} {self.event_type} {self.agent_id}"


class PresenceEntry(models.Model):
    """One open WebSocket on a session: who is watching, shared by every Daphne process."""

    channel_name = models.CharField(max_length=200, unique=True)
    session_id = models.CharField(max_length=24, db_index=True)
    kind = models.CharField(max_length=10)  # "agent" or "user"
    viewer_id = models.CharField(max_length=150)
    agent_type = models.CharField(max_length=50, blank=True)
    last_seen = models.DateTimeField(db_index=True)

    class Meta:
        verbose_name_plural = "presence entries"
        # The per-viewer connection cap counts a viewer's rows on every connect: without it, a scan of every row.
        indexes = [models.Index(fields=["kind", "viewer_id"], name="presence_viewer")]

    def __str__(self):
        return f"{self.viewer_id} on {self.session_id}"


class AgentCredential(models.Model):
    """One agent's own key, issued by staff: bound to one agent id, one agent type and a ceiling of permissions.

    The key itself (``scs_<key_id>_<secret>``) is shown once when it is issued; only
    a SHA-256 of it is stored. ``realtime.credentials`` issues, checks and revokes keys.
    """

    key_id = models.CharField(max_length=16, unique=True)
    key_hash = models.CharField(max_length=64)
    agent_id = models.CharField(max_length=100, db_index=True)
    agent_type = models.CharField(max_length=50)
    permissions = models.JSONField(default=list)
    description = models.CharField(max_length=200, blank=True)
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["agent_id", "-created_at"]

    def __str__(self):
        return f"{self.agent_id} ({self.key_id})"


class RevokedToken(models.Model):
    """A token retired before its expiry (refreshed or revoked); kept until it would have expired."""

    jti = models.CharField(max_length=64, primary_key=True)
    agent_id = models.CharField(max_length=100, blank=True)
    expires_at = models.DateTimeField(db_index=True)
    revoked_at = models.DateTimeField(auto_now_add=True)
    reason = models.CharField(max_length=50, blank=True)

    def __str__(self):
        return f"{self.jti} ({self.reason})"


class ImportedRecord(models.Model):
    """A record brought in from another server's database (``manage.py import_scs``), so no import repeats it.

    ``original`` names the record in its source (e.g. ``session_…/12`` for message 12 of that session);
    ``local_id`` is what it became here.
    """

    kind = models.CharField(max_length=16)  # session, message, memory or audit
    original = models.CharField(max_length=255)
    local_id = models.CharField(max_length=64)
    imported_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["kind", "original"], name="imported_record_unique")]

    def __str__(self):
        return f"{self.kind} {self.original} -> {self.local_id}"
