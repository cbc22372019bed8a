"""Database connections: kept between calls on Channels' reused threads, closed when a Django request ends.

Under ASGI, Django runs each request's sync code on a thread of its own, which ends with the request; with
``CONN_MAX_AGE`` set, a connection opened there would outlive its thread (``project.connections``).
"""

import os
import threading
from pathlib import Path

import httpx
from django.core.signals import request_finished
from django.db import connections

from project import asgi  # noqa: F401 - connects the receiver, as Daphne's entry point does


def database_files_open(pid, database):
    """How many file descriptors of process ``pid`` point at the SQLite file ``database`` or its -wal / -shm."""
    names = {str(database), f"{database}-wal", f"{database}-shm"}
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            count += os.readlink(fd) in names
        except OSError:
            pass  # closed meanwhile
    return count


def test_pages_served_by_daphne_leave_no_connection_behind(stack):
    cookie = stack.signed_in("page-reader")
    database = stack.data_dir / "db.sqlite3"
    assert database.exists()
    with httpx.Client(base_url=stack.app_url, cookies={"sessionid": cookie}, timeout=10) as client:
        assert client.get("/").status_code == 200  # the dashboard: queries in the request's own thread
        before = database_files_open(stack.daphne.pid, database)
        for _ in range(30):
            assert client.get("/").status_code == 200
    # Each request's thread is gone; had its connection been kept, 30 requests would hold 30 or more files open.
    assert database_files_open(stack.daphne.pid, database) <= before + 3


def test_the_request_finished_receiver_closes_the_threads_connections(monkeypatch):
    """In the thread that finishes the request (an in-memory test database ignores close, so a stand-in counts)."""
    closed = []

    class Connection:
        alias = "default"

        def close(self):
            closed.append(threading.get_ident())

        def close_if_unusable_or_obsolete(self):
            pass

    monkeypatch.setattr(connections, "all", lambda initialized_only=False: [Connection()])
    thread = threading.Thread(target=request_finished.send, kwargs={"sender": None})
    thread.start()
    thread.join()
    assert closed == [thread.ident]
