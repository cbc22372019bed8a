"""Stacks past one process: Redis channel layer, Postgres, several Daphne and sidecar processes.

They run on ``SCS_TEST_REDIS_URL`` and ``SCS_TEST_DATABASE_URL`` when set, else on the
local services (``redis://127.0.0.1:6379/0``, ``postgres://postgres@127.0.0.1:5432/postgres``)
when those answer, and are skipped, saying why, when neither. Each stack gets a database
of its own, copied from one migrated once per test run, and dropped when it stops.
"""

import functools
import os
import secrets
import subprocess
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.stack import PYTHON, ROOT, Stack

REDIS_ENV = "SCS_TEST_REDIS_URL"
DATABASE_ENV = "SCS_TEST_DATABASE_URL"
LOCAL = {REDIS_ENV: "redis://127.0.0.1:6379/0", DATABASE_ENV: "postgres://postgres@127.0.0.1:5432/postgres"}


def redis_answers(url):
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    finally:
        client.close()


def postgres_answers(url):
    import psycopg

    psycopg.connect(url, connect_timeout=2).close()


@functools.cache
def found():
    """``{variable: url or None}`` and ``{variable: why not}``: set in the environment, else local if it answers."""
    urls, problems = {}, {}
    for name, check in ((REDIS_ENV, redis_answers), (DATABASE_ENV, postgres_answers)):
        urls[name] = os.environ.get(name, "").strip() or None
        if urls[name] is None:
            try:
                check(LOCAL[name])
            except Exception as exc:  # noqa: BLE001 - any failure means: not there
                problems[name] = f"{name} is not set and {LOCAL[name]} did not answer ({type(exc).__name__})"
            else:
                urls[name] = LOCAL[name]
    return urls, problems


def services():
    """``(redis_url, database_url)``, or skip saying which service is missing."""
    urls, problems = found()
    if problems:
        pytest.skip(f"{'; '.join(problems.values())}: the Redis + Postgres scale-out tests did not run")
    return urls[REDIS_ENV], urls[DATABASE_ENV]


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
