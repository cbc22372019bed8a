"""The default allowed origins are the server's own URLs, on the port each process serves."""

import pytest
from django.test import override_settings

from realtime.live.origins import allowed_origins


@override_settings(ALLOWED_HOSTS=["127.0.0.1", "localhost"], CSRF_TRUSTED_ORIGINS=["https://scs.example.com"],
                   SCS_ALLOWED_ORIGINS=[], SCS_WS_PORT=8081)
def test_each_process_allows_the_port_it_serves_on():
    second_worker = {"type": "websocket", "server": ("127.0.0.1", 8082)}
    assert allowed_origins(second_worker) == [
        "http://127.0.0.1:8082", "http://localhost:8082", "https://scs.example.com",
    ]
    assert allowed_origins({"type": "websocket"})[:2] == ["http://127.0.0.1:8081", "http://localhost:8081"]


@override_settings(SCS_ALLOWED_ORIGINS=["https://Scs.Example.com/"])
def test_configured_origins_replace_the_defaults():
    assert allowed_origins({"server": ("127.0.0.1", 8082)}) == ["https://scs.example.com"]


async def origin_admits(*headers):
    """Whether ``ExactOriginValidator`` hands a handshake with ``headers`` on (else Channels' denier refuses it)."""
    from channels.testing import WebsocketCommunicator

    from realtime.live.origins import ExactOriginValidator

    async def inner(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept"})

    comm = WebsocketCommunicator(ExactOriginValidator(inner), "/ws/x/", headers=list(headers))
    connected, _ = await comm.connect(timeout=3)
    await comm.disconnect()
    return connected


@pytest.mark.django_db  # Channels' denier closes stale database connections, as every consumer does
@override_settings(SCS_ALLOWED_ORIGINS=["https://scs.example.com"])
async def test_the_validator_admits_exactly_the_allowed_origins():
    from realtime import conf

    secret = (b"authorization", f"Bearer {conf.get('SCS_BROADCAST_SECRET')}".encode())
    assert await origin_admits((b"origin", b"https://scs.example.com"))
    assert not await origin_admits((b"origin", b"https://scs.example.com:8443"))
    assert not await origin_admits((b"origin", b"http://scs.example.com"))
    assert not await origin_admits((b"origin", b"https://[::1"))  # malformed: refused as no origin
    assert not await origin_admits((b"origin", b"https://scs.example.com:99999"))
    assert not await origin_admits((b"origin", b"https://scs.example.com:x"))
    assert not await origin_admits()
    assert await origin_admits(secret)  # a sidecar opening the wake relay
    assert not await origin_admits((b"origin", b"https://evil.example"), secret)  # a browser never passes so
