"""The app's settings: every name starts with ``SCS_`` and has a default here."""

from django.conf import settings

DEFAULTS = {
    "SCS_API_KEY": "",
    "SCS_JWT_SECRET": "",
    "SCS_BROADCAST_SECRET": "",
    "SCS_BROADCAST_URL": "http://127.0.0.1:8081",
    # Seconds a token issued by authenticate_agent stays valid.
    "SCS_TOKEN_TTL": 24 * 3600,
    # Seconds after expiry during which refresh_token still accepts a genuine token.
    "SCS_TOKEN_REFRESH_GRACE": 7 * 24 * 3600,
    # Permissions each agent type may hold; unknown types get "*".
    "SCS_AGENT_PERMISSIONS": {
        "admin": ["read", "write", "admin"],
        "system": ["read", "write", "admin"],
        "claude": ["read", "write"],
        "gemini": ["read", "write"],
        "generic": ["read", "write"],
        "test": ["read", "write"],
        "*": ["read"],
    },
    # Visibility levels a signed-in, non-staff user may read in the browser.
    "SCS_USER_VISIBILITY": ["public"],
    "SCS_MAX_CONTENT_LENGTH": 100_000,
    "SCS_MAX_METADATA_BYTES": 16_384,
    "SCS_MAX_PURPOSE_LENGTH": 1_000,
    "SCS_BROADCAST_MAX_BODY": 4 * 1024 * 1024,
}


def get(name):
    """The value of app setting ``name`` (``SCS_…``), or its default."""
    return getattr(settings, name, DEFAULTS[name])
