"""Settings for in-process tests: the standalone settings with a throw-away data folder."""

import os
import tempfile

os.environ.setdefault("SCS_DATA_DIR", tempfile.mkdtemp(prefix="scs-test-"))
os.environ.pop("DATABASE_URL", None)
os.environ.pop("CHANNEL_LAYER_URL", None)

from project.settings import *  # noqa: E402, F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast test users

# No sweeper started by a consumer on pytest's event loops; tests/test_publisher.py drives one directly.
SCS_ANNOUNCE_SWEEP_INTERVAL = 0
