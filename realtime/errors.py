"""The one error type domain operations raise, and the codes it may carry; callers turn it into their own shape.

Each code is stable (part of the API) and says what to do about it (``ErrorCode.X.advice``): the
troubleshooting guidance agents read and the README's error code table are both made from this enum.
"""

from enum import StrEnum


class ErrorCode(StrEnum):
    """A stable error code; get_usage_guidance(guidance_type="troubleshooting") says what to do about each."""

    # A member equals its name as a string (ErrorCode.X == "X"), so on the wire it is that string.
    def __new__(cls, code, advice):
        member = str.__new__(cls, code)
        member._value_ = code
        member.advice = advice
        return member

    # Who is calling.
    API_KEY_REQUIRED = (
        "API_KEY_REQUIRED",
        "Send your agent key (or the shared key) as X-API-Key; it may be revoked or expired."
    )
    AUTH_REQUIRED = "AUTH_REQUIRED", "Pass auth_token (or Authorization: Bearer)."
    TOKEN_INVALID = "TOKEN_INVALID", "The token was not issued by this server or was altered; authenticate_agent again."
    TOKEN_EXPIRED = "TOKEN_EXPIRED", "Call refresh_token(current_token); past the grace window, authenticate_agent."
    TOKEN_REVOKED = (
        "TOKEN_REVOKED",
        "The token was refreshed away or revoked, or its key was revoked or expired; authenticate_agent again "
        "(with a valid key)."
    )
    REAUTHENTICATION_REQUIRED = "REAUTHENTICATION_REQUIRED", "refresh_token refused: call authenticate_agent again."
    IDENTITY_MISMATCH = (
        "IDENTITY_MISMATCH",
        "Your key belongs to another agent id or agent type than the one you asked for or the token you "
        "passed; use the agent_id and agent_type the key was issued for."
    )
    AGENT_KEY_REQUIRED = "AGENT_KEY_REQUIRED", "That agent id has its own key; the shared key cannot act for it."
    PERMISSION_DENIED = "PERMISSION_DENIED", "Your agent type (or your key) does not hold the needed permission."
    RATE_LIMITED = "RATE_LIMITED", "Too many calls from your agent id; wait retry_after seconds."
    TOO_MANY_WAITERS = (
        "TOO_MANY_WAITERS",
        "This server holds the most waiting calls it allows; retry in a few seconds, or read with get_messages."
    )
    # What was asked.
    INVALID_ARGUMENT = (
        "INVALID_ARGUMENT",
        "An argument breaks the tool's input schema (type, range, pattern or length)."
    )
    INVALID_SESSION_ID = "INVALID_SESSION_ID", "Session ids look like session_ + 16 hex characters."
    INVALID_PURPOSE = "INVALID_PURPOSE", "Say in a sentence (not too long) what the session is for."
    INVALID_CONTENT = "INVALID_CONTENT", "content must be a non-empty string."
    CONTENT_TOO_LARGE = "CONTENT_TOO_LARGE", "Split the content into several messages."
    INVALID_VISIBILITY = "INVALID_VISIBILITY", "visibility is one of public, private, agent_only, admin_only."
    INVALID_METADATA = "INVALID_METADATA", "metadata must be a JSON object of plain JSON (no NaN or Infinity)."
    METADATA_TOO_LARGE = "METADATA_TOO_LARGE", "Store less metadata."
    OFFSET_TOO_LARGE = (
        "OFFSET_TOO_LARGE",
        "Page get_messages with since_seq (next_since_seq) instead of a large offset."
    )
    INVALID_SCOPE = "INVALID_SCOPE", "search_scope is one of all, public, private."
    INVALID_QUERY = "INVALID_QUERY", "Search for a word or phrase with at least one letter or digit."
    QUERY_TOO_LONG = "QUERY_TOO_LONG", "Search for a few distinctive words (at most 1,000 characters)."
    INVALID_DATETIME = "INVALID_DATETIME", "Use ISO 8601, e.g. 2026-05-01T14:00:00Z."
    INVALID_TIME_RANGE = "INVALID_TIME_RANGE", "start_time must not be after end_time."
    INVALID_KEY = "INVALID_KEY", "Memory keys are 1-255 of letters, digits and _ . : / @ + = - (no spaces)."
    INVALID_VALUE = "INVALID_VALUE", "Store a JSON value (no NaN or Infinity)."
    VALUE_TOO_LARGE = "VALUE_TOO_LARGE", "Store a smaller value, or split it under several keys."
    INVALID_TTL = "INVALID_TTL", "expires_in is a whole number of seconds, 0 (keep) up to the server's maximum."
    # What is there.
    SESSION_NOT_FOUND = "SESSION_NOT_FOUND", "Check the session id, or create_session."
    SESSION_CLOSED = (
        "SESSION_CLOSED",
        "Staff closed the session and it takes no new messages until they reopen it; you can still read it, or "
        "create_session for new work."
    )
    PARENT_NOT_FOUND = "PARENT_NOT_FOUND", "parent_message_id must be a message of the same session."
    SESSION_QUOTA_EXCEEDED = (
        "SESSION_QUOTA_EXCEEDED",
        "You created the most sessions allowed this hour; reuse one you created."
    )
    MEMORY_NOT_FOUND = "MEMORY_NOT_FOUND", "Same key and same session_id as when stored; it may have expired."
    MEMORY_KEY_EXISTS = (
        "MEMORY_KEY_EXISTS",
        "set_memory(overwrite=false) found a value; pass overwrite=true to replace it."
    )
    MEMORY_FULL = "MEMORY_FULL", "You hold the most memory entries allowed; overwrite or let some expire."
    # Pushed messages.
    PUSH_UNAVAILABLE = (
        "PUSH_UNAVAILABLE",
        "This connection has no stream for the server to push on (stateless HTTP, or a client without the "
        "initialize handshake): connect over stdio or stateful HTTP, or read with get_messages(since_seq)."
    )
    TOO_MANY_WATCHES = "TOO_MANY_WATCHES", "Unwatch a session first (unwatch_session), or open another connection."


class OperationError(Exception):
    """A request that cannot be carried out. ``code`` (an ErrorCode) is stable, ``hint`` says how to fix it."""

    def __init__(self, code: ErrorCode, message, hint=""):
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint

    def as_dict(self):
        result = {"success": False, "error": self.message, "code": self.code}
        if self.hint:
            result["hint"] = self.hint
        return result
