"""Stacks past one process: Redis channel layer, Postgres, several Daphne and sidecar processes.

They run when ``SCS_TEST_REDIS_URL`` and ``SCS_TEST_DATABASE_URL`` are set (``.ci/run``
sets both); each stack gets a database of its own, copied from one migrated once per
test run, and dropped when it stops.
"""

import os
import secrets
import subprocess
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.stack import PYTHON, ROOT, Stack

REDIS_ENV = "SCS_TEST_REDIS_URL"
DATABASE_ENV = "SCS_TEST_DATABASE_URL"


def services():
    """``(redis_url, database_url)``, or skip saying which variable is missing."""
    redis_url, database_url = os.environ.get(REDIS_ENV, "").strip(), os.environ.get(DATABASE_ENV, "").strip()
    missing = [name for name, value in ((REDIS_ENV, redis_url), (DATABASE_ENV, database_url)) if not value]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not set: the Redis + Postgres scale-out tests did not run "
                    "(.ci/run sets them, e.g. redis://127.0.0.1:6379/0 and postgres://postgres@127.0.0.1:5432/postgres)")
    return redis_url, database_url


class ThrowawayDatabase:
    """A fresh Postgres database beside the one ``admin_url`` names; ``drop()`` removes it."""

    def __init__(self, admin_url, template=None):
        import psycopg

        self.admin_url = admin_url
        self.name = f"scs_test_{secrets.token_hex(6)}"
        with psycopg.connect(admin_url, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{self.name}"' + (f' TEMPLATE "{template}"' if template else ""))
        parts = urlsplit(admin_url)
        self.url = urlunsplit(parts._replace(path=f"/{self.name}"))

    def drop(self):
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def migrated_database(admin_url, data_dir):
    """A new database with every migration applied (``manage.py migrate`` in a child process)."""
    database = ThrowawayDatabase(admin_url)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SCS_", "DATABASE_URL", "CHANNEL_LAYER"))}
    env = {**base, "DJANGO_SETTINGS_MODULE": "project.settings", "SCS_DATA_DIR": str(data_dir),
           "DATABASE_URL": database.url}
    migrate = subprocess.run([PYTHON, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, capture_output=True,
                             text=True)
    if migrate.returncode != 0:
        database.drop()
        raise RuntimeError(f"migrate failed on Postgres:\n{migrate.stdout}{migrate.stderr}")
    return database


class ScaledStack(Stack):
    """A Stack on Redis + Postgres that can run more Daphne and sidecar processes over the same env.

    ``template`` names a migrated database to copy (see ``migrated_database``).
    """

    def __init__(self, data_dir, redis_url, database_url, template=None, **env):
        self.database = ThrowawayDatabase(database_url, template)
        super().__init__(data_dir, CHANNEL_LAYER_URL=redis_url, DATABASE_URL=self.database.url,
                         CHANNEL_LAYER_PREFIX=f"scs-test-{secrets.token_hex(4)}", **env)
        self.template = template

    def migrate(self):
        if self.template is None:  # a copy of the template is migrated already
            super().migrate()

    def stop(self):
        try:
            super().stop()
        finally:
            self.database.drop()
