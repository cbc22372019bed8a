"""How a publisher hands events over: the one choice ``SCS_PUBLISH_VIA`` makes.

- ``http``: POST to Daphne's broadcast door (``realtime.broadcast_client``); the
  only way a plain process reaches the viewers of a Daphne with an in-memory layer.
- ``channel_layer``: ``realtime.live.delivery.deliver`` on this process's layer.
- ``auto`` (default): ``channel_layer`` when the layer is shared between
  processes (Redis), else ``http``.

Each strategy has ``send`` (async, one attempt) and ``send_sync`` (for a process
with no publisher loop), both answering a ``broadcast_client.Result``.
"""

from asgiref.sync import async_to_sync
from django.core.exceptions import ImproperlyConfigured

from realtime import conf
from realtime.broadcast_client import REJECTED, RETRY, SENT, BroadcastClient, Result

WAYS = ("auto", "channel_layer", "http")


def publish_via():
    """``"channel_layer"`` or ``"http"``: how this process publishes (``SCS_PUBLISH_VIA``)."""
    from realtime.live.layers import default_is_process_local

    via = conf.get("SCS_PUBLISH_VIA")
    if via not in WAYS:
        raise ImproperlyConfigured(f"SCS_PUBLISH_VIA must be one of {', '.join(WAYS)}, not {via!r}")
    if via != "auto":
        return via
    return "http" if default_is_process_local() else "channel_layer"


class HttpStrategy:
    via = "http"

    def __init__(self, client=None):
        self.client = client or BroadcastClient(conf.get("SCS_BROADCAST_URL"), conf.get("SCS_BROADCAST_SECRET"))

    @property
    def target(self):
        return self.client.target

    async def send(self, session_id, events):
        return await self.client.send(session_id, events)

    def send_sync(self, session_id, events):
        return self.client.send_sync(session_id, events)

    async def close(self):
        await self.client.aclose()


class ChannelLayerStrategy:
    via = "channel_layer"
    target = "channel_layer"

    async def send(self, session_id, events):
        from realtime.live import delivery  # what runs in Daphne: loaded only by a process publishing this way

        try:
            delivered = await delivery.deliver_to(session_id, events)
        except Exception as exc:  # noqa: BLE001 - e.g. Redis unreachable: back off and retry
            return Result(RETRY, f"{type(exc).__name__}: {exc}", "Is the channel layer (CHANNEL_LAYER_URL) reachable?")
        return Result(SENT) if delivered else Result(REJECTED, f"no session {session_id}", "it was deleted")

    def send_sync(self, session_id, events):
        return async_to_sync(self.send)(session_id, events)

    async def close(self):
        pass


def strategy_for(via):
    return ChannelLayerStrategy() if via == "channel_layer" else HttpStrategy()
