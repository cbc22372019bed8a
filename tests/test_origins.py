"""The default allowed origins are the server's own URLs, on the port each process serves."""

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
