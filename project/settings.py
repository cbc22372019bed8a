"""Settings for the standalone deployment; every value comes from the environment.

Both processes (Daphne and the MCP sidecar) load this module, so they agree on
the database, the secrets and the broadcast URL without any other coordination.
"""

from pathlib import Path

from realtime.conf import DEFAULTS as SCS_DEFAULTS

from .env import (
    EnvError,
    database_url,
    env_flag,
    env_float,
    env_int,
    env_list,
    env_networks,
    env_str,
    load_environment,
    local_secret,
    make_private,
    private_file,
    private_folder,
    sqlite_file,
)

BASE_DIR = Path(__file__).resolve().parent.parent
# A .env file in the working directory, then shared-context-server 1.1's variable names (project.env).
load_environment()

SCS_DATA_DIR = Path(env_str("SCS_DATA_DIR", str(BASE_DIR / "var"))).resolve()
# The data folder holds the database (with everyone's session keys) and the secrets: 0700, files 0600.
# Every process that loads these settings fixes an older, readable install and says so on stderr.
make_private(SCS_DATA_DIR)
SCS_HOST = env_str("SCS_HOST", SCS_DEFAULTS["SCS_HOST"])
SCS_WS_PORT = env_int("SCS_WS_PORT", SCS_DEFAULTS["SCS_WS_PORT"], minimum=1, maximum=65535)
SCS_MCP_PORT = env_int("SCS_MCP_PORT", SCS_DEFAULTS["SCS_MCP_PORT"], minimum=1, maximum=65535)
# Derived rather than a second default: the sidecar follows Daphne when only SCS_WS_PORT is set.
SCS_BROADCAST_URL = env_str("SCS_BROADCAST_URL", f"http://127.0.0.1:{SCS_WS_PORT}")
# Who may POST /broadcast/: the sidecar's address(es) as IPs or networks (comma-separated).
SCS_BROADCAST_ALLOWED_IPS = env_networks("SCS_BROADCAST_ALLOWED_IPS", SCS_DEFAULTS["SCS_BROADCAST_ALLOWED_IPS"])
# MCP over stateless HTTP, for several sidecars behind one URL without sticky routing.
SCS_PUBLISH_VIA = env_str("SCS_PUBLISH_VIA", SCS_DEFAULTS["SCS_PUBLISH_VIA"])
if SCS_PUBLISH_VIA not in {"auto", "http", "channel_layer"}:
    raise EnvError(f"SCS_PUBLISH_VIA must be auto, http or channel_layer, got {SCS_PUBLISH_VIA!r}")
SCS_PUBLISH_MAX_QUEUE = env_int("SCS_PUBLISH_MAX_QUEUE", SCS_DEFAULTS["SCS_PUBLISH_MAX_QUEUE"], minimum=1)
SCS_ANNOUNCE_SWEEP_INTERVAL = env_float(
    "SCS_ANNOUNCE_SWEEP_INTERVAL", SCS_DEFAULTS["SCS_ANNOUNCE_SWEEP_INTERVAL"], minimum=0)
SCS_ANNOUNCE_GRACE = env_float("SCS_ANNOUNCE_GRACE", SCS_DEFAULTS["SCS_ANNOUNCE_GRACE"], minimum=0)
SCS_MCP_STATELESS = env_flag("SCS_MCP_STATELESS", SCS_DEFAULTS["SCS_MCP_STATELESS"])
SCS_TOKEN_TTL = env_int("SCS_TOKEN_TTL", SCS_DEFAULTS["SCS_TOKEN_TTL"], minimum=60, maximum=366 * 24 * 3600)
SCS_USER_VISIBILITY = env_list("SCS_USER_VISIBILITY", SCS_DEFAULTS["SCS_USER_VISIBILITY"])
# The most the shared SCS_API_KEY may get from authenticate_agent (e.g. "read,write,admin"); agent keys
# carry their own ceiling.
SCS_API_KEY_PERMISSIONS = env_list("SCS_API_KEY_PERMISSIONS", SCS_DEFAULTS["SCS_API_KEY_PERMISSIONS"])
if not SCS_API_KEY_PERMISSIONS or set(SCS_API_KEY_PERMISSIONS) - {"read", "write", "admin"}:
    raise EnvError(f"SCS_API_KEY_PERMISSIONS must list some of read, write, admin, got {SCS_API_KEY_PERMISSIONS!r}")
SCS_TOKEN_MAX_AGE = env_int("SCS_TOKEN_MAX_AGE", SCS_DEFAULTS["SCS_TOKEN_MAX_AGE"], minimum=60)
SCS_TOOL_RATE = env_int("SCS_TOOL_RATE", SCS_DEFAULTS["SCS_TOOL_RATE"], minimum=1)
SCS_TOOL_BURST = env_int("SCS_TOOL_BURST", SCS_DEFAULTS["SCS_TOOL_BURST"], minimum=1)
SCS_USER_POST_RATE = env_float("SCS_USER_POST_RATE", SCS_DEFAULTS["SCS_USER_POST_RATE"], minimum=0.001)
SCS_USER_POST_BURST = env_int("SCS_USER_POST_BURST", SCS_DEFAULTS["SCS_USER_POST_BURST"], minimum=1)
# Per WebSocket connection: client frames per second (burst saved up), and bytes Daphne may
# hold unsent for a client that does not read before it drops the connection.
SCS_WS_FRAME_RATE = env_int("SCS_WS_FRAME_RATE", SCS_DEFAULTS["SCS_WS_FRAME_RATE"], minimum=1)
SCS_WS_FRAME_BURST = env_int("SCS_WS_FRAME_BURST", SCS_DEFAULTS["SCS_WS_FRAME_BURST"], minimum=1)
# At least 1 MiB: more than one largest frame.
SCS_WS_MAX_BUFFER = env_int("SCS_WS_MAX_BUFFER", SCS_DEFAULTS["SCS_WS_MAX_BUFFER"], minimum=1024 * 1024)
# Under Daphne: WebSocket clients' permessage-deflate offers are accepted.
SCS_WS_DEFLATE = env_flag("SCS_WS_DEFLATE", SCS_DEFAULTS["SCS_WS_DEFLATE"])
# Under Daphne: allocations between two young-generation collections; Python's own 700 is the floor.
SCS_GC_THRESHOLD = env_int("SCS_GC_THRESHOLD", SCS_DEFAULTS["SCS_GC_THRESHOLD"], minimum=700)
# Failed sign-ins allowed per username and per client address within the window (seconds).
SCS_SIGNIN_MAX_FAILURES = env_int("SCS_SIGNIN_MAX_FAILURES", SCS_DEFAULTS["SCS_SIGNIN_MAX_FAILURES"], minimum=1)
SCS_SIGNIN_WINDOW = env_int("SCS_SIGNIN_WINDOW", SCS_DEFAULTS["SCS_SIGNIN_WINDOW"], minimum=1)
# Behind a proxy on this host every client is 127.0.0.1: list the proxy so its X-Real-IP names the client.
SCS_TRUSTED_PROXIES = env_networks("SCS_TRUSTED_PROXIES", SCS_DEFAULTS["SCS_TRUSTED_PROXIES"])
# Largest HTTP request body Daphne accepts (the broadcast view's own limit is SCS_BROADCAST_MAX_BODY).
SCS_HTTP_MAX_BODY = env_int("SCS_HTTP_MAX_BODY", SCS_DEFAULTS["SCS_HTTP_MAX_BODY"], minimum=65_536)
# Bounds on one MCP call and on what one agent keeps (defaults and their reasons in realtime/conf.py).
SCS_MAX_READ_BYTES = env_int("SCS_MAX_READ_BYTES", SCS_DEFAULTS["SCS_MAX_READ_BYTES"], minimum=64 * 1024)
SCS_SEARCH_MAX_WORK = env_int("SCS_SEARCH_MAX_WORK", SCS_DEFAULTS["SCS_SEARCH_MAX_WORK"], minimum=1_000_000)
SCS_WAIT_MAX_TIMEOUT = env_int("SCS_WAIT_MAX_TIMEOUT", SCS_DEFAULTS["SCS_WAIT_MAX_TIMEOUT"], minimum=1, maximum=3600)
SCS_MAX_MEMORY_ENTRIES = env_int("SCS_MAX_MEMORY_ENTRIES", SCS_DEFAULTS["SCS_MAX_MEMORY_ENTRIES"], minimum=1)
SCS_MAX_SESSIONS_PER_HOUR = env_int("SCS_MAX_SESSIONS_PER_HOUR", SCS_DEFAULTS["SCS_MAX_SESSIONS_PER_HOUR"], minimum=1)
SCS_MAX_WATCHES = env_int("SCS_MAX_WATCHES", SCS_DEFAULTS["SCS_MAX_WATCHES"], minimum=1)
SCS_MARKDOWN_IMAGES = env_flag("SCS_MARKDOWN_IMAGES", SCS_DEFAULTS["SCS_MARKDOWN_IMAGES"])
SCS_MAX_WAITERS = env_int("SCS_MAX_WAITERS", SCS_DEFAULTS["SCS_MAX_WAITERS"], minimum=1)
SCS_WAKE_POLL_INTERVAL = env_float("SCS_WAKE_POLL_INTERVAL", SCS_DEFAULTS["SCS_WAKE_POLL_INTERVAL"], minimum=0)
SCS_AUDIT_RETENTION_DAYS = env_int("SCS_AUDIT_RETENTION_DAYS", SCS_DEFAULTS["SCS_AUDIT_RETENTION_DAYS"], minimum=1)

# Secrets: from the environment, or generated once into the data folder (0600).
SECRET_KEY = local_secret("DJANGO_SECRET_KEY", SCS_DATA_DIR)
SCS_API_KEY = local_secret("SCS_API_KEY", SCS_DATA_DIR)
SCS_JWT_SECRET = local_secret("SCS_JWT_SECRET", SCS_DATA_DIR)
SCS_BROADCAST_SECRET = local_secret("SCS_BROADCAST_SECRET", SCS_DATA_DIR)

DEBUG = env_flag("SCS_DEBUG", False)
ALLOWED_HOSTS = env_list("SCS_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
# Behind a reverse proxy that ends TLS, the sign-in form posts from https://<host>: list that origin.
CSRF_TRUSTED_ORIGINS = env_list("SCS_CSRF_TRUSTED_ORIGINS", [])
# SCS_TLS=1: browsers reach the server over https through a proxy that ends TLS and sets
# X-Forwarded-Proto (and overwrites any the client sent). An explicit switch rather than a guess from
# SCS_CSRF_TRUSTED_ORIGINS: adding one http origin must not quietly send session cookies in clear.
SCS_TLS = env_flag("SCS_TLS", False)
if SCS_TLS:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")


def _origins(name):
    from realtime.live.origins import parse_origin  # no Django models: safe while settings load

    try:
        return [parse_origin(origin) for origin in env_list(name, SCS_DEFAULTS[name])]
    except ValueError as exc:
        raise EnvError(f"{name}: {exc}") from None


# Browser origins a WebSocket may come from, matched exactly (scheme, host, port). Empty: this server's
# own URLs, http://<each SCS_ALLOWED_HOSTS entry>:<the port it listens on>, plus SCS_CSRF_TRUSTED_ORIGINS.
SCS_ALLOWED_ORIGINS = _origins("SCS_ALLOWED_ORIGINS")
# Open session WebSockets per signed-in user or agent id, across Daphne processes (0: no cap).
SCS_MAX_CONNECTIONS_PER_VIEWER = env_int(
    "SCS_MAX_CONNECTIONS_PER_VIEWER", SCS_DEFAULTS["SCS_MAX_CONNECTIONS_PER_VIEWER"], minimum=0
)

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "realtime",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
]

# Relative to this package: "project" in a checkout, "scs_django.project" installed (scs_django.settings).
ROOT_URLCONF = f"{__package__}.urls"
ASGI_APPLICATION = f"{__package__}.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # The standalone deployment's sign-in and error pages; the app itself brings none.
        "DIRS": [BASE_DIR / "project" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.csp",
            ],
        },
    },
]


def _database():
    import dj_database_url

    url = database_url()
    if not url:
        private_folder(SCS_DATA_DIR)
        sqlite = sqlite_file(SCS_DATA_DIR)
        private_file(sqlite)  # SQLite would create it 0644 (and its -wal, -shm alike)
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": sqlite,
            # Kept open between calls, as for a DATABASE_URL: Channels' database work runs on reused threads, and
            # reopening the file (with its PRAGMAs) for every call cost Daphne 0.1-0.2 of a core at 10,000
            # connections. A Django request's connections are closed when it ends (project.connections).
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,
            "OPTIONS": {
                # Two processes write this file: take the write lock up front and
                # wait for it instead of failing with "database is locked".
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    try:
        config = dj_database_url.parse(url, conn_max_age=60, conn_health_checks=True)
    except ValueError as exc:
        raise EnvError(f"DATABASE_URL is not a database URL this server understands: {exc}") from None
    return config


DATABASES = {"default": _database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


def _channel_layer():
    url = env_str("CHANNEL_LAYER_URL", "")
    if not url:
        # The default capacity (100) silently drops events for a slow viewer; see realtime.live.layers
        # for why not the stock class. Group membership lasts as long as the connection.
        return {
            "BACKEND": "realtime.live.layers.InMemoryChannelLayer",
            "CONFIG": {"capacity": 5000, "expiry": 60, "group_expiry": 10 * 365 * 86400},
        }
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise EnvError("CHANNEL_LAYER_URL must be a redis:// or rediss:// URL")
    # Redis pub/sub rather than channels_redis.core, measured (python -m bench channel_layer):
    # core copies each group message into a sorted set per member and every process pops them
    # one by one; pub/sub publishes once and each process hands it to its own members.
    # 1,000 viewers: fan-out p50 38 ms vs 141 ms, receiving CPU 4x lower; one viewer: 0.4 ms vs
    # 4.3 ms. Pub/sub is at-most-once while a process is cut off from Redis; a viewer then gets
    # the missed seqs from the database at the next event or on reconnect (see the consumer).
    # It also has no group expiry (core silently drops viewers connected for over a day).
    # Pub/sub channels ignore the Redis database number: deployments sharing one Redis
    # keep apart by CHANNEL_LAYER_PREFIX.
    prefix = env_str("CHANNEL_LAYER_PREFIX", "scs")
    return {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer", "CONFIG": {"hosts": [url], "prefix": prefix}}


CHANNEL_LAYERS = {"default": _channel_layer()}


def _cache():
    """Django's cache (it holds the sign-in failure counts): per process, or Redis shared by every process."""
    url = env_str("SCS_CACHE_URL", "")
    if not url:
        return {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise EnvError("SCS_CACHE_URL must be a redis:// or rediss:// URL")
    return {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url}


CACHES = {"default": _cache()}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "realtime:dashboard"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env_str("SCS_STATIC_ROOT", "") or None  # set for collectstatic in production
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_CSP = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    # SCS_MARKDOWN_IMAGES: images in messages come from anywhere over https.
    "img-src": ["'self'", "data:", *(["https:"] if SCS_MARKDOWN_IMAGES else [])],
    "connect-src": ["'self'"],  # CSP Level 3: 'self' covers ws:// and wss:// to this host and port
    "object-src": ["'none'"],
    "base-uri": ["'none'"],
    "frame-ancestors": ["'none'"],
    "form-action": ["'self'"],
}
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Lax"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "realtime": {"level": env_str("SCS_LOG_LEVEL", "INFO").upper()},
        "mcp_sidecar": {"level": env_str("SCS_LOG_LEVEL", "INFO").upper()},
    },
}
