"""The host project's settings: its own apps and users, plus the few lines that add the app."""

import os
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA_DIR = Path(os.environ.get("SCS_DATA_DIR") or tempfile.mkdtemp(prefix="scs-host-"))

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "host-project-test-key-not-for-production")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "tests.hostproject.accounts",
    "channels",
    "realtime",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "tests.hostproject.urls"
ASGI_APPLICATION = "tests.hostproject.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [HERE / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": DATA_DIR / "host.sqlite3",
        # Daphne, the sidecar and host scripts all write this file.
        "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 30, "init_command": "PRAGMA journal_mode=WAL;"},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.Member"
LOGIN_URL = "/members/sign-in/"
LOGIN_REDIRECT_URL = "/agents/"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 5000}}}

USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "/static/"

# The app. Its secrets and SCS_BROADCAST_URL (".../agents") come from the environment.
SCS_WS_PREFIX = "agents/"
SCS_BASE_TEMPLATE = "hostproject/base.html"
# The origins its pages are served from: browser WebSockets from anywhere else are refused.
_PORT = os.environ.get("SCS_WS_PORT", "8000")
SCS_ALLOWED_ORIGINS = [f"http://127.0.0.1:{_PORT}", f"http://localhost:{_PORT}"]
