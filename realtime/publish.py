"""Adding sessions and messages from host code, stored, numbered and published like an agent's.

    from realtime import publish

    session = publish.create_session("Nightly import", created_by="importer")
    publish.add_message(session.id, "Imported 1,204 rows", sender="importer")

Both join the caller's transaction when there is one. A message reaches live
viewers only after its transaction commits, through the same publisher as every
other message (``realtime.publisher``; how it sends is ``SCS_PUBLISH_VIA``). In
a process with no publisher loop (a view under a WSGI server, a Celery worker,
a shell) it is sent at once from the committing thread.

A failed send is logged, never raised: the message is stored, and a sweeper
(in the sidecar, or in Daphne) announces it within seconds.
"""

from realtime import operations
from realtime.models import Visibility
from realtime.strategies import publish_via

__all__ = ["add_message", "create_session", "publish_via"]


def create_session(purpose, created_by="django", metadata=None):
    """Create a session; returns the ``Session`` (its id is ``session.id``)."""
    return operations.create_session(purpose, created_by, metadata)


def add_message(session_id, content, sender="django", sender_type="system", visibility=Visibility.PUBLIC,
                metadata=None, parent_message_id=None):
    """Store a message with the session's next seq, published after commit; returns the ``Message``.

    Raises ``realtime.errors.OperationError`` (``.code``, ``.hint``) on bad input, as the MCP tool does.
    Host code is trusted: it may write ``admin_only`` messages.
    """
    return operations.add_message(
        session_id, sender=sender, sender_type=sender_type, content=content, visibility=visibility,
        metadata=metadata, parent_message_id=parent_message_id, may_write_admin_only=True,
    )
