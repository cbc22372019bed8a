"""The data folder is private: 0700, every file in it 0600, from the first start and after an upgrade.

Real processes: the database, its -wal and -shm files and the generated secrets are
made by Daphne, the sidecar and manage.py themselves.
"""

import asyncio
import os
import stat

import pytest

NOTICE = "scs: made the data folder"


def modes(folder):
    """``{relative path: mode}`` for the folder and everything in it."""
    found = {".": stat.S_IMODE(os.stat(folder).st_mode)}
    for root, folders, files in os.walk(folder):
        for name in folders + files:
            path = os.path.join(root, name)
            found[os.path.relpath(path, folder)] = stat.S_IMODE(os.lstat(path).st_mode)
    return found


def assert_private(folder):
    found = modes(folder)
    wrong = {path: oct(mode) for path, mode in found.items()
             if mode != (0o700 if os.path.isdir(os.path.join(folder, path)) else 0o600)}
    assert not wrong, f"not private: {wrong}"
    return found


def make_readable(folder):
    for path in modes(folder):
        full = os.path.join(folder, path)
        try:
            os.chmod(full, 0o755 if os.path.isdir(full) else 0o644)
        except FileNotFoundError:  # a running process's last connection closing removes SQLite's -wal and -shm
            pass


def write_messages(stack, count=3):
    async def run():
        async with await stack.agent("writer") as agent:
            session_id = (await agent.call("create_session", purpose="modes"))["session_id"]
            for number in range(count):
                await agent.call("add_message", session_id=session_id, content=f"m{number}", visibility="public")

    asyncio.run(run())


@pytest.fixture
def generated_secrets_stack(fresh_stack):
    """A stack whose secrets are generated into its data folder, as on a first local run."""
    stack = fresh_stack(SCS_API_KEY="", SCS_JWT_SECRET="", SCS_BROADCAST_SECRET="", DJANGO_SECRET_KEY="")
    secrets = stack.data_dir / "secrets"
    stack.api_key = (secrets / "scs_api_key").read_text().strip()
    stack.broadcast_secret = (secrets / "scs_broadcast_secret").read_text().strip()
    return stack


def test_first_start_makes_the_folder_0700_and_every_file_0600(generated_secrets_stack):
    stack = generated_secrets_stack
    write_messages(stack)  # both processes hold the database open in WAL mode now
    found = assert_private(stack.data_dir)
    assert {"db.sqlite3", "db.sqlite3-wal", "db.sqlite3-shm", "secrets", "secrets/scs_api_key",
            "secrets/scs_jwt_secret", "secrets/scs_broadcast_secret", "secrets/django_secret_key"} <= set(found)
    for name in ("daphne", "sidecar"):
        assert NOTICE not in stack.log(name)  # nothing to fix on a first start: nothing said


def test_a_readable_install_is_fixed_at_the_next_start_with_one_notice(generated_secrets_stack):
    stack = generated_secrets_stack
    write_messages(stack)
    stack.stop()
    make_readable(stack.data_dir)

    first = stack.manage("check")
    notices = [line for line in first.stderr.splitlines() if line.startswith("scs:")]
    assert len(notices) == 1 and NOTICE in notices[0], first.stderr
    assert "db.sqlite3 (was 644)" in notices[0] and ". (was 755)" in notices[0]
    assert_private(stack.data_dir)
    assert "scs:" not in stack.manage("check").stderr  # nothing left to change: nothing said

    make_readable(stack.data_dir)
    stack.start_daphne()
    assert NOTICE in stack.log("daphne")
    assert_private(stack.data_dir)
    make_readable(stack.data_dir)
    stack.start_sidecar()
    assert NOTICE in stack.log("sidecar")
    write_messages(stack)
    assert_private(stack.data_dir)
