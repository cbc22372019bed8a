"""``python -m mcp_sidecar --transport stdio --watch SESSION_ID``: watches from the start, as ``SCS_AGENT_KEY``'s agent.

The sessions and the key are checked when the process starts (a one-line error otherwise); each
session is then followed from its last seq at that moment, once the client's
``notifications/initialized`` arrives (``mcp_sidecar.push``).
"""

import logging
import os

from fastmcp.server.middleware import Middleware

from mcp_sidecar.auth import STDIO_KEY_VARIABLE
from mcp_sidecar.push import in_thread, key_rights, watch
from realtime import conf, credentials
from realtime.errors import OperationError
from realtime.visibility import Viewer
from realtime.waiting import session_last_seq

logger = logging.getLogger(__name__)


class WatchAtStart(Middleware):
    """``--watch``: once the client's ``notifications/initialized`` arrives, watch these sessions as the agent
    whose key admitted this stdio process, from their last seq when the process started (``cursors``)."""

    def __init__(self, cursors, key):
        self.cursors = cursors
        self.key = key

    async def on_notification(self, context, call_next):
        result = await call_next(context)
        if context.method == "notifications/initialized":
            admission = await in_thread(credentials.admit)(self.key)
            if admission is None:
                logger.warning("--watch: %s no longer admits its agent; nothing is watched", STDIO_KEY_VARIABLE)
                return result
            viewer = Viewer.for_agent(admission.agent_id, admission.agent_type, admission.permissions)
            for session_id, cursor in self.cursors.items():
                try:
                    await watch(context.fastmcp_context.session, "channel", viewer, session_id, cursor,
                                key_rights(admission.key_id))
                except OperationError as exc:
                    logger.warning("--watch %s: %s (%s)", session_id, exc.message, exc.code)
        return result


def watch_at_start(session_ids):
    """The middleware that carries out ``--watch``, once the sessions and the stdio agent key were checked.

    ValueError (one line) if there is no agent key, it may not read, or a session does not exist.
    """
    key = os.environ.get(STDIO_KEY_VARIABLE, "").strip()
    if not key:
        raise ValueError(f"--watch needs an agent key: set {STDIO_KEY_VARIABLE} to the key of the agent that watches")
    admission = credentials.admit(key)
    if admission is None or "read" not in admission.permissions:
        raise ValueError(f"--watch: the agent of {STDIO_KEY_VARIABLE} may not read (no read permission, or revoked)")
    session_ids = list(dict.fromkeys(session_ids))
    if len(session_ids) > conf.get("SCS_MAX_WATCHES"):
        raise ValueError(f"--watch: at most {conf.get('SCS_MAX_WATCHES')} sessions (SCS_MAX_WATCHES)")
    cursors = {}
    for session_id in session_ids:
        try:
            cursors[session_id] = session_last_seq(session_id)
        except OperationError as exc:
            raise ValueError(f"--watch {session_id}: {exc.message}") from None
    return WatchAtStart(cursors, key)
