"""Reading settings from the environment, with one-line errors for bad values."""

import contextlib
import ipaddress
import os
import secrets
import sqlite3
import stat
import sys
from pathlib import Path

import dotenv


class EnvError(Exception):
    """A setting in the environment is missing or malformed."""


# shared-context-server 1.1's name for each of our settings: read when ours is unset or empty.
# DATABASE_URL has the same name in both; DATABASE_PATH (1.1's SQLite file) is read by sqlite_file().
LEGACY_NAMES = {
    "SCS_API_KEY": "API_KEY",
    "SCS_JWT_SECRET": "JWT_SECRET_KEY",
    "SCS_TOKEN_TTL": "JWT_EXPIRATION_TIME",
    "SCS_HOST": "HTTP_HOST",
    "SCS_MCP_PORT": "HTTP_PORT",
    "SCS_WS_PORT": "WEBSOCKET_PORT",
    "SCS_ALLOWED_HOSTS": "ALLOWED_HOSTS",
    "SCS_LOG_LEVEL": "LOG_LEVEL",
    "SCS_AUDIT_RETENTION_DAYS": "AUDIT_LOG_RETENTION_DAYS",
    "SCS_MAX_MEMORY_ENTRIES": "MAX_MEMORY_ENTRIES_PER_AGENT",
}


def load_environment(environ=None, cwd=None):
    """Read ``.env`` in the working directory (what is already in the environment wins), then 1.1's names.

    Writes into the process environment, so the processes ``serve`` starts see the same values.
    """
    environ = os.environ if environ is None else environ
    dotenv_file = Path(cwd or Path.cwd()) / ".env"
    if dotenv_file.is_file():
        for name, value in dotenv.dotenv_values(dotenv_file).items():
            if value is not None and name not in environ:
                environ[name] = value
    for ours, theirs in LEGACY_NAMES.items():
        if not environ.get(ours, "").strip() and environ.get(theirs, "").strip():
            environ[ours] = environ[theirs]


def database_url():
    """``DATABASE_URL`` without a SQLAlchemy driver (1.1 wrote ``sqlite+aiosqlite://``, ``postgresql+asyncpg://``)."""
    url = env_str("DATABASE_URL", "")
    scheme, sep, rest = url.partition("://")
    return f"{scheme.partition('+')[0]}{sep}{rest}" if sep else url


def is_scs_database(path):
    """``path`` is a shared-context-server 1.1 SQLite database (its tables, none of Django's)."""
    if not Path(path).is_file() or Path(path).stat().st_size == 0:
        return False
    try:
        with contextlib.closing(sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)) as db:
            tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError:
        return False
    return {"sessions", "messages", "agent_memory"} <= tables and "django_migrations" not in tables


def sqlite_file(data_dir: Path):
    """The SQLite database file: ``DATABASE_PATH`` (1.1's name) if set, else ``data_dir/db.sqlite3``.

    A 1.1 database there is refused rather than migrated into: its data comes over with import_scs.
    """
    raw = env_str("DATABASE_PATH", "")
    if not raw:
        return data_dir / "db.sqlite3"
    path = Path(raw).expanduser().resolve()
    if is_scs_database(path):
        raise EnvError(f"DATABASE_PATH={raw} is a shared-context-server 1.1 database: import it with "
                       f"`import_scs {raw}` and set DATABASE_PATH to a new file (or unset it)")
    private_folder(path.parent)
    return path


def env_str(name, default):
    return os.environ.get(name, default).strip()


def _env_number(name, default, parse, kind, minimum, maximum):
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = parse(raw)
    except ValueError:
        raise EnvError(f"{name} must be {kind}, got {raw!r}") from None
    if value != value:  # NaN
        raise EnvError(f"{name} must be {kind}, got {raw!r}")
    if minimum is not None and value < minimum:
        raise EnvError(f"{name} must be at least {minimum}, got {raw.strip()}")
    if maximum is not None and value > maximum:
        raise EnvError(f"{name} must be at most {maximum}, got {raw.strip()}")
    return value


def env_int(name, default, *, minimum=None, maximum=None):
    return _env_number(name, default, int, "a whole number", minimum, maximum)


def env_float(name, default, *, minimum=None, maximum=None):
    return _env_number(name, default, float, "a number", minimum, maximum)


def env_flag(name, default):
    """A switch: on for 1, true or yes (any case), off for anything else; ``default`` when unset or empty."""
    raw = os.environ.get(name, "").strip().lower()
    return default if raw == "" else raw in {"1", "true", "yes"}


def env_list(name, default):
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def local_secret(name, data_dir: Path, *, min_length=16):
    """Return the secret ``name`` from the environment, else from ``data_dir``.

    On a first local run the secret is generated into ``data_dir/secrets/`` with
    mode 0600 (the folder 0700) and reused afterwards, so both processes read the same value.
    """
    value = os.environ.get(name, "").strip()
    if value:
        if len(value) < min_length:
            raise EnvError(f"{name} must be at least {min_length} characters long")
        return value
    folder = data_dir / "secrets"
    path = folder / name.lower()
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    private_folder(data_dir)
    private_folder(folder)
    generated = secrets.token_urlsafe(32)
    temporary = folder / f".{path.name}.{os.getpid()}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(generated)
    try:
        os.link(temporary, path)  # atomic: readers never see a half-written file
    except FileExistsError:  # another process generated it first
        return path.read_text().strip()
    finally:
        temporary.unlink()
    return generated


def env_networks(name, default):
    """A comma-separated list of IP addresses or networks (``10.0.0.0/8``), checked."""
    values = env_list(name, default)
    for value in values:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise EnvError(f"{name} must list IP addresses or networks, got {value!r}") from None
    return values


PRIVATE_FOLDER = 0o700
PRIVATE_FILE = 0o600


def private_folder(path: Path):
    """Create folder ``path`` (and missing parents) with mode 0700; an existing one is left as it is."""
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_FOLDER)  # the umask can only remove bits


def private_file(path: Path):
    """Create an empty file ``path`` with mode 0600 unless it exists.

    SQLite gives its -wal and -shm files the database file's mode, so creating the
    database this way keeps all three private from the first run.
    """
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))
    except FileExistsError:
        pass


def make_private(data_dir: Path, *, stream=None):
    """Make ``data_dir`` 0700 and everything in it 0700 (folders) or 0600 (files).

    An install made before the data folder was private had it 0755 and its database
    0644, readable by every local user. Says on one stderr line what it changed;
    says nothing when nothing needed changing. Symbolic links are left alone.
    """
    changed, failed = [], []

    def fix(path, wanted):
        try:
            status = os.lstat(path)
        except FileNotFoundError:
            return
        if stat.S_ISLNK(status.st_mode) or stat.S_IMODE(status.st_mode) == wanted:
            return
        try:
            os.chmod(path, wanted)
        except OSError:
            failed.append(path)
        else:
            changed.append((path, stat.S_IMODE(status.st_mode)))

    if not data_dir.is_dir():
        return
    fix(data_dir, PRIVATE_FOLDER)
    for root, folders, files in os.walk(data_dir):
        for name in folders:
            fix(os.path.join(root, name), PRIVATE_FOLDER)
        for name in files:
            fix(os.path.join(root, name), PRIVATE_FILE)
    if not (changed or failed):
        return
    parts = []
    if changed:
        shown = ", ".join(f"{os.path.relpath(path, data_dir)} (was {mode:o})" for path, mode in changed[:5])
        more = f" and {len(changed) - 5} more" if len(changed) > 5 else ""
        parts.append(f"made the data folder {data_dir} private (folders 0700, files 0600): {shown}{more}")
    if failed:
        parts.append(f"could not change the mode of {len(failed)} path(s), e.g. {failed[0]}: fix them by hand")
    print("scs: " + "; ".join(parts), file=stream or sys.stderr, flush=True)
