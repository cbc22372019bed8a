"""Every WebSocket close code the app's consumers use, and what the client should do about it."""

CLOSE_RECHECK = 4001  # the account changed (signed out, password, staff, deactivated): reconnect afresh
CLOSE_BAD_REQUEST = 4400  # malformed URL or query (e.g. ?since=abc): fix the URL
CLOSE_UNAUTHORIZED = 4401  # no valid identity, or it was revoked/expired since: sign in or get a new token
CLOSE_NOT_FOUND = 4404  # no such session
CLOSE_TOO_MANY = 4409  # SCS_MAX_CONNECTIONS_PER_VIEWER connections already open: close one, then retry
CLOSE_RATE_LIMITED = 4429  # more client frames than SCS_WS_FRAME_RATE allows
CLOSE_TOO_BIG = 1009  # a client frame over 16 KB
CLOSE_STALLED = 4408  # the client read nothing of a replay for DRAIN_TIMEOUT seconds: reconnect with ?since

# Codes after which a page stops reconnecting, with what it tells the reader (sent with each page that
# opens a socket: realtime.views.context).
FINAL = {
    CLOSE_UNAUTHORIZED: "signed out — reload to sign in",
    CLOSE_NOT_FOUND: "session not found",
    CLOSE_TOO_MANY: "too many open connections — close another tab, then reload",
}
