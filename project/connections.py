"""Database connections in Daphne: kept on the threads that are reused, closed with the request elsewhere.

The settings keep a connection open between calls (``CONN_MAX_AGE``). Channels runs its database work on
reused threads (``database_sync_to_async``: one sync thread, or asgiref's pool), where that saves reopening
the database for every call: the rights check twice a second, a viewer's replay, the broadcast door's rare
reads. Django's ASGI handler runs each request's sync code on a thread of its own (asgiref's
``ThreadSensitiveContext``), which ends with the request: a connection kept there would outlive its thread.
So when a Django request finishes, its thread's connections are closed, whatever their age.
"""

from django.core.signals import request_finished
from django.db import connections


def close_request_connections(**kwargs):
    """Close this thread's database connections (a ``request_finished`` receiver)."""
    for connection in connections.all(initialized_only=True):
        connection.close()


def close_after_each_request():
    """Connect ``close_request_connections`` to ``request_finished`` (once, however often called)."""
    request_finished.connect(close_request_connections, dispatch_uid="project.connections.close_after_each_request")
