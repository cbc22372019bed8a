"""``resources/subscribe`` to ``session://{session_id}``: ``notifications/resources/updated`` as it changes.

FastMCP 4.2.3 serves no subscriptions itself; the MCP server under it (mcp 2.3.0) takes a
``resources/subscribe`` handler with ``add_request_handler`` and then advertises
``capabilities.resources.subscribe: true`` to clients of the initialize handshake
(``mcp/server/lowlevel/server.py``, ``get_capabilities``). The subscriber is identified as
for reading the resource (``auth.reader``: the ``Authorization: Bearer`` token, else the
agent key that admitted the client), and is told of the messages it may see, its own
included (they change what it reads), once per batch.
"""

import mcp_types
from mcp.shared.exceptions import MCPError

from mcp_sidecar import push
from mcp_sidecar.app import mcp
from mcp_sidecar.auth import admission, authorize, bearer_from_headers, current_claims, reader
from realtime.errors import OperationError

PREFIX = "session://"


def subscriber():
    """Who subscribes, as for reading the resource (``auth.reader``), and the rights its watch keeps checking."""
    admitted = admission()
    if bearer_from_headers() or admitted.is_shared:
        claims = current_claims(None)
        return authorize(claims, "read"), push.token_rights(claims)
    return reader(), push.key_rights(admitted.key_id)


def refused(exc):
    return MCPError(mcp_types.INVALID_PARAMS, f"{exc.code}: {exc.message}. {exc.hint}".strip())


def session_of(uri):
    if not uri.startswith(PREFIX):
        raise MCPError(mcp_types.INVALID_PARAMS, f"only {PREFIX}{{session_id}} can be subscribed to, not {uri[:100]}")
    return uri[len(PREFIX):]


async def subscribe(ctx, params):
    session_id = session_of(str(params.uri))
    try:
        viewer, rights = await push.in_thread(subscriber)()
        await push.watch(ctx.session, "resource", viewer, session_id, None, rights)
    except OperationError as exc:
        raise refused(exc) from None
    return mcp_types.EmptyResult()


async def unsubscribe(ctx, params):
    await push.unwatch(ctx.session, "resource", session_of(str(params.uri)))
    return mcp_types.EmptyResult()


mcp._mcp_server.add_request_handler("resources/subscribe", mcp_types.SubscribeRequestParams, subscribe)
mcp._mcp_server.add_request_handler("resources/unsubscribe", mcp_types.UnsubscribeRequestParams, unsubscribe)
