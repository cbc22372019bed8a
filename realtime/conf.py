"""The app's settings: every name starts with ``SCS_`` and has a default here.

A value in Django's settings wins; the secrets and the broadcast URL (``ENVIRONMENT``)
may instead come from the process environment, so a host project need not copy them
into its settings module.
"""

import os

from django.conf import settings

DEFAULTS = {
    "SCS_API_KEY": "",
    "SCS_JWT_SECRET": "",
    "SCS_BROADCAST_SECRET": "",
    # Where Daphne serves this app, including the prefix it is mounted under
    # (e.g. "http://127.0.0.1:8000/agents"); the sidecar POSTs /broadcast/ there (a shell, /broadcast/<id>).
    "SCS_BROADCAST_URL": "http://127.0.0.1:8081",
    # The sidecar's listen address and port (``python -m mcp_sidecar``).
    "SCS_HOST": "127.0.0.1",
    "SCS_MCP_PORT": 23456,
    # MCP over stateless HTTP, for several sidecars behind one URL without sticky routing.
    "SCS_MCP_STATELESS": False,
    # Path before "ws/<session_id>/" in the WebSocket routes and in the URLs the pages connect to.
    "SCS_WS_PREFIX": "",
    # The template realtime/base.html extends: the host's own base, with blocks
    # title, extra_head, content and scripts.
    "SCS_BASE_TEMPLATE": "realtime/layout.html",
    # How every committed message is published (realtime.publisher): "channel_layer", "http" (POST to
    # SCS_BROADCAST_URL), or "auto": the channel layer when it is shared between processes (not in-memory), else http.
    "SCS_PUBLISH_VIA": "auto",
    # Events a running publisher keeps waiting while Daphne (or the layer) is down; past it the oldest are dropped,
    # counted, and announced later by a sweeper.
    "SCS_PUBLISH_MAX_QUEUE": 10_000,
    # Seconds between two sweeps for sessions whose newest message was never announced (realtime.announce);
    # 0 turns the sweeper off in this process.
    "SCS_ANNOUNCE_SWEEP_INTERVAL": 1.0,
    # Seconds a session must have been quiet before a sweep announces it, so live sends are not duplicated.
    "SCS_ANNOUNCE_GRACE": 2.0,
    # Seconds a token issued by authenticate_agent stays valid.
    "SCS_TOKEN_TTL": 24 * 3600,
    # Seconds after expiry during which refresh_token still accepts a genuine token.
    "SCS_TOKEN_REFRESH_GRACE": 7 * 24 * 3600,
    # The most a client admitted by the shared SCS_API_KEY may get from authenticate_agent (agent keys
    # carry their own ceiling). Add "admin" only where everyone holding the shared key is trusted as admin.
    "SCS_API_KEY_PERMISSIONS": ["read", "write"],
    # Seconds since an agent last authenticated (authenticate_agent) after which refresh_token refuses its
    # tokens: the agent must authenticate again, with a key that is still valid.
    "SCS_TOKEN_MAX_AGE": 30 * 24 * 3600,
    # MCP tool calls per second per agent id (token bucket, per sidecar process), and the burst it may save up.
    # The busiest agent of `python -m bench e2e` makes 530 calls back to back at 170-360 calls/s (warm-up and
    # sequential phases): 500 + 100/s covers that even at 360/s (647 > 530); a burst of 300 did not (439).
    "SCS_TOOL_RATE": 100,
    "SCS_TOOL_BURST": 500,
    # Permissions each agent type may hold under the shared key; unknown types get "*".
    "SCS_AGENT_PERMISSIONS": {
        "admin": ["read", "write", "admin"],
        "system": ["read", "write", "admin"],
        "claude": ["read", "write"],
        "gemini": ["read", "write"],
        "generic": ["read", "write"],
        "test": ["read", "write"],
        "*": ["read"],
    },
    # Writes from the pages (messages from the composer, new sessions, staff's changes) per second per signed-in
    # user (token bucket, per Daphne process), and the burst allowed; past it they are answered 429.
    "SCS_USER_POST_RATE": 1.0,
    "SCS_USER_POST_BURST": 10,
    # Visibility levels a signed-in, non-staff user may read in the browser.
    "SCS_USER_VISIBILITY": ["public"],
    "SCS_MAX_CONTENT_LENGTH": 100_000,
    "SCS_MAX_METADATA_BYTES": 16_384,
    "SCS_MAX_PURPOSE_LENGTH": 1_000,
    "SCS_BROADCAST_MAX_BODY": 4 * 1024 * 1024,
    # Client addresses (IPs or networks) the broadcast view accepts; loopback only by default.
    "SCS_BROADCAST_ALLOWED_IPS": ["127.0.0.1", "::1"],
    # Frames per second one WebSocket client may send (token bucket), and the burst it may save up.
    "SCS_WS_FRAME_RATE": 10,
    "SCS_WS_FRAME_BURST": 40,
    # Under Daphne (realtime.live.daphne_limits): unsent bytes a WebSocket client may leave unread before it is
    # dropped, and the largest HTTP request body accepted.
    "SCS_WS_MAX_BUFFER": 4 * 1024 * 1024,
    # Under Daphne: accept a WebSocket client's permessage-deflate offer (realtime.live.ws_deflate bounds it to
    # a 4 KiB window and no server context takeover). Off by default: frames shrink by half or more, but each is
    # then compressed once per connection, 3.4x Daphne's CPU per frame (``python -m bench fanout --deflate``).
    "SCS_WS_DEFLATE": False,
    # In Daphne and the MCP sidecar: allocations between two young-generation garbage collections (Python's
    # default is 700). With 10,000 connections open a full collection walks ~1.7 M objects (1-2 s) and the
    # defaults ran one every few seconds; realtime.live.daphne_limits and realtime.collector explain the figures.
    "SCS_GC_THRESHOLD": 50_000,
    # Open session WebSockets one signed-in user (by username) or one agent id may hold at once, across
    # Daphne processes; the next is refused with 4409. 0: no cap.
    "SCS_MAX_CONNECTIONS_PER_VIEWER": 20,
    # Origins (scheme://host[:port]) a browser WebSocket may come from, matched exactly. Empty: the server's
    # own URLs, http://<each ALLOWED_HOSTS entry>:<the port the connection came in on>, plus CSRF_TRUSTED_ORIGINS.
    "SCS_ALLOWED_ORIGINS": [],
    # The port Daphne serves on: the default origins' port where the server does not say which it listens on.
    "SCS_WS_PORT": 8081,
    "SCS_HTTP_MAX_BODY": 8 * 1024 * 1024,
    # Agent memory: largest value (JSON-encoded bytes) and longest time to live (seconds).
    "SCS_MAX_MEMORY_VALUE_BYTES": 256 * 1024,
    "SCS_MAX_MEMORY_TTL": 365 * 24 * 3600,
    # Sign-in (the standalone project's forms): failed attempts allowed per username and per client address
    # within the window (seconds); past them every attempt is answered 429 until the window has passed.
    "SCS_SIGNIN_MAX_FAILURES": 10,
    "SCS_SIGNIN_WINDOW": 300,
    # Proxies (IPs or networks) whose X-Real-IP header names the client for the sign-in limit; none by default.
    "SCS_TRUSTED_PROXIES": [],
    # search_context scans at most this many of the newest visible messages.
    "SCS_SEARCH_MAX_SCAN": 50_000,
    # ... and at most this many characters of them (sender, content, metadata), newest first.
    "SCS_SEARCH_MAX_CHARS": 10_000_000,
    # ... and at most this much work: query length x characters scanned (what partial_ratio costs: 1-4 ns a
    # unit on one core, more for longer queries; 400M is 1-2 s for a 1,000-character query, and lets a
    # 20-character query scan all 10M characters).
    "SCS_SEARCH_MAX_WORK": 400_000_000,
    # Longest query search_context accepts (characters).
    "SCS_SEARCH_MAX_QUERY": 1_000,
    # Characters of searchable text the per-process candidate cache keeps over all its entries
    # (up to 4 bytes each in memory); an entry larger than this is not kept.
    "SCS_SEARCH_CACHE_CHARS": 40_000_000,
    # The most one read returns: UTF-8 bytes of content and metadata, plus 256 per record, always at least one
    # record. The MCP Python SDK's client refuses a server-sent event over 1 MiB, and JSON escapes can make a
    # response larger than its text; 512 KiB is still more than a page of 1,000 ordinary messages.
    "SCS_MAX_READ_BYTES": 512 * 1024,
    # The highest offset get_messages accepts; page further with since_seq.
    "SCS_MAX_OFFSET": 10_000,
    # The longest an agent's call may wait for messages (wait_for_messages' timeout, get_inbox's wait), in seconds.
    "SCS_WAIT_MAX_TIMEOUT": 300,
    # Memory entries one agent may hold (unexpired, global and per session together).
    "SCS_MAX_MEMORY_ENTRIES": 1_000,
    # Sessions one agent id may create per rolling hour.
    "SCS_MAX_SESSIONS_PER_HOUR": 100,
    # Sessions one MCP session (one client connection) may watch at once (watch_session, resources/subscribe,
    # --watch): each is a task and a hub waiter in the sidecar.
    "SCS_MAX_WATCHES": 20,
    # Messages render as Markdown; images written in them show as links unless this is true (an image
    # would make every viewer's browser fetch its URL).
    "SCS_MARKDOWN_IMAGES": False,
    # Waiting calls (wait_for_messages and the like) one sidecar process holds at once; the next is refused
    # with TOO_MANY_WAITERS. Each costs a connection and a few KB; an idle one costs no CPU.
    "SCS_MAX_WAITERS": 1_000,
    # Seconds between two checks, while anyone waits, of the waited sessions' newest seq against what this
    # process was told (one query for all of them); it wakes waiters whose events the wake stream missed.
    # 0 turns it off.
    "SCS_WAKE_POLL_INTERVAL": 1.0,
    # Audit events older than this are deleted (at most once an hour per process, in batches).
    "SCS_AUDIT_RETENTION_DAYS": 90,
}


ENVIRONMENT = frozenset({"SCS_API_KEY", "SCS_JWT_SECRET", "SCS_BROADCAST_SECRET", "SCS_BROADCAST_URL"})


def get(name):
    """The value of app setting ``name`` (``SCS_…``): settings, then the environment (``ENVIRONMENT``), then default."""
    if hasattr(settings, name):
        return getattr(settings, name)
    if name in ENVIRONMENT and os.environ.get(name, "").strip():
        return os.environ[name].strip()
    return DEFAULTS[name]


def ws_prefix():
    """``SCS_WS_PREFIX`` as a relative path ending in "/" (or "")."""
    prefix = str(get("SCS_WS_PREFIX")).strip("/")
    return f"{prefix}/" if prefix else ""
