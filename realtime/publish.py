"""Adding sessions and messages from host code, stored, numbered and pushed like an agent's.

    from realtime import publish

    session = publish.create_session("Nightly import", created_by="importer")
    publish.add_message(session.id, "Imported 1,204 rows", sender="importer")

Both join the caller's transaction when there is one. A message reaches live
viewers only after its transaction commits, pushed as ``SCS_PUBLISH_VIA`` says:

- ``"channel_layer"``: group-send on this process's channel layer. Right in the
  Daphne process, and in any process when the layer is shared (Redis).
- ``"http"``: POST the event to ``SCS_BROADCAST_URL`` + ``/broadcast/<id>`` with
  ``SCS_BROADCAST_SECRET``, as the sidecar does (when it lists several Daphne
  processes, to the first that accepts). Works from any process (a Celery
  worker, a management command, a shell) that can reach Daphne.
- ``"auto"`` (default): ``channel_layer`` when the layer is shared between
  processes, else ``http`` (an in-memory layer reaches only its own process).

A failed push is logged, never raised: the message is stored, and viewers fill
the gap by seq at the next event or when they reconnect.
"""

import asyncio
import functools
import json
import logging

import httpx
from asgiref.sync import async_to_sync
from channels.layers import DEFAULT_CHANNEL_LAYER
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

from realtime import conf, operations
from realtime.envelope import message_event
from realtime.live import delivery
from realtime.live.layers import is_process_local
from realtime.models import Visibility

logger = logging.getLogger(__name__)

IN_MEMORY_LAYER = "channels.layers.InMemoryChannelLayer"
WAYS = ("auto", "channel_layer", "http")
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})  # try the next Daphne listed
_pending = set()  # pushes scheduled on a running loop, kept until they finish


def create_session(purpose, created_by="django", metadata=None):
    """Create a session; returns the ``Session`` (its id is ``session.id``)."""
    return operations.create_session(purpose, created_by, metadata)


def add_message(session_id, content, sender="django", sender_type="system", visibility=Visibility.PUBLIC,
                metadata=None, parent_message_id=None):
    """Store a message with the session's next seq, push it after commit; returns the ``Message``.

    Raises ``realtime.errors.OperationError`` (``.code``, ``.hint``) on bad input, as the MCP tool does.
    Host code is trusted: it may write ``admin_only`` messages.
    """
    message = operations.add_message(
        session_id, sender=sender, sender_type=sender_type, content=content, visibility=visibility,
        metadata=metadata, parent_message_id=parent_message_id, may_write_admin_only=True,
    )
    transaction.on_commit(functools.partial(push, message_event(message)), robust=True)
    return message


def publish_via():
    """``"channel_layer"`` or ``"http"``: how this process pushes (``SCS_PUBLISH_VIA``)."""
    via = conf.get("SCS_PUBLISH_VIA")
    if via not in WAYS:
        raise ImproperlyConfigured(f"SCS_PUBLISH_VIA must be one of {', '.join(WAYS)}, not {via!r}")
    if via != "auto":
        return via
    layer = getattr(settings, "CHANNEL_LAYERS", {}).get(DEFAULT_CHANNEL_LAYER) or {"BACKEND": IN_MEMORY_LAYER}
    return "http" if is_process_local(layer) else "channel_layer"


def push(event):
    """Send one stored event to the session's live viewers; logs instead of raising."""
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if publish_via() == "channel_layer":
        if running is None:
            _report(event, async_to_sync(delivery.deliver)(event["session_id"], [event]))
        else:
            _keep(running.create_task(_deliver_and_report(event)))
    elif running is None:
        _post(event)
    else:
        _keep(running.run_in_executor(None, _post, event))


def _keep(future):
    _pending.add(future)
    future.add_done_callback(_pending.discard)


async def _deliver_and_report(event):
    _report(event, await delivery.deliver(event["session_id"], [event]))


def _report(event, delivered):
    if not delivered:
        logger.warning("message %s: session %s is gone; nothing pushed", event["seq"], event["session_id"])


@functools.lru_cache(maxsize=1)
def _client():
    # Retries cover connection failures only; a repeated POST is harmless anyway,
    # because viewers drop any seq they already have.
    return httpx.Client(
        timeout=httpx.Timeout(5.0, connect=1.0),
        transport=httpx.HTTPTransport(retries=2),
        headers={"Content-Type": "application/json"},
    )


def _post(event):
    """POST ``event`` to the first Daphne in ``SCS_BROADCAST_URL`` (comma-separated) that accepts it."""
    session_id, seq = event["session_id"], event["seq"]
    body = json.dumps(event, separators=(",", ":"))
    headers = {"Authorization": f"Bearer {conf.get('SCS_BROADCAST_SECRET')}"}
    failures = []
    for base in [url.strip().rstrip("/") for url in conf.get("SCS_BROADCAST_URL").split(",") if url.strip()]:
        url = f"{base}/broadcast/{session_id}"
        try:
            response = _client().post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            failures.append(f"{type(exc).__name__} posting to {url}")
            continue
        if response.status_code == 202:
            return
        if response.status_code in RETRYABLE_STATUS:
            failures.append(f"HTTP {response.status_code} from {url}")
            continue
        hint = (
            "SCS_BROADCAST_SECRET differs from Daphne's, or this address is not in SCS_BROADCAST_ALLOWED_IPS"
            if response.status_code in (401, 403)
            else "SCS_BROADCAST_URL may miss the prefix the app is mounted under"
            if response.status_code == 404 and "SESSION_NOT_FOUND" not in response.text
            else "see Daphne's log"
        )
        logger.warning("message %s of %s stored but not pushed: HTTP %s from %s (%s)",
                       seq, session_id, response.status_code, url, hint)
        return
    logger.warning(
        "message %s of %s stored but not pushed: %s. Is Daphne running there? "
        "Check SCS_BROADCAST_URL (it includes the prefix the app is mounted under).",
        seq, session_id, "; ".join(failures) or "SCS_BROADCAST_URL is empty",
    )
