"""Reading settings from the environment, with one-line errors for bad values."""

import ipaddress
import os
import secrets
from pathlib import Path


class EnvError(Exception):
    """A setting in the environment is missing or malformed."""


def env_str(name, default):
    return os.environ.get(name, default).strip()


def env_int(name, default, *, minimum=None, maximum=None):
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise EnvError(f"{name} must be a whole number, got {raw!r}") from None
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise EnvError(f"{name} must be between {minimum} and {maximum}, got {value}")
    return value


def env_list(name, default):
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def local_secret(name, data_dir: Path, *, min_length=16):
    """Return the secret ``name`` from the environment, else from ``data_dir``.

    On a first local run the secret is generated into ``data_dir/secrets/`` with
    mode 0600 and reused afterwards, so both processes read the same value.
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
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
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
