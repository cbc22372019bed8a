"""The fan-out benchmark's own parts: its options, how it reads our frames and the peer's, and what it counts."""

import asyncio
import json
import time
from argparse import Namespace
from datetime import UTC, datetime

import pytest
import websockets

from bench import fanout_bench
from bench.fanout_bench import READY, OurFrames, PeerFrames, Viewer, check, parse, peer_skipped, web_client
from realtime.envelope import encode
from realtime.timestamps import isoformat

SESSION = "session_0123456789abcdef"
STORED = datetime(2026, 5, 1, 14, 0, 0, 250000, tzinfo=UTC)


def peer_frame(content, message_id=7, timestamp="2026-05-01T14:00:00.250000+00:00"):
    """A ``new_message`` frame as shared-context-server 1.1.10 sends it (Starlette's compact ``send_json``)."""
    return json.dumps({"type": "new_message", "data": {
        "id": message_id, "sender": "fan-writer", "sender_type": "claude", "content": content,
        "visibility": "public", "timestamp": timestamp, "metadata": {}}}, separators=(",", ":"))


def our_frame(seq, content="anything"):
    return encode({"type": "new_message", "session_id": SESSION, "seq": seq, "data": {
        "id": 40 + seq, "sender": "fan-writer", "sender_type": "claude", "content": content, "visibility": "public",
        "metadata": None, "parent_message_id": None, "timestamp": isoformat(STORED)}})


def test_the_peer_runs_by_default_and_options_name_its_virtualenv(tmp_path, monkeypatch):
    monkeypatch.delenv("SCS_PEER_VENV", raising=False)
    args = parse(["--viewers", "8"])
    assert args.no_peer is False and args.peer_venv == fanout_bench.PEER_VENV and args.client == "fastmcp"
    assert peer_skipped(args) is None
    args = parse(["--viewers", "8", "--no-peer", "--peer-venv", str(tmp_path)])
    assert args.no_peer is True and args.peer_venv == tmp_path
    assert peer_skipped(args) == "--no-peer"


@pytest.mark.parametrize(("daphnes", "layer", "deflate", "client", "reason"), [
    (2, "redis", False, "fastmcp", "one Daphne on the in-memory layer"),
    (1, "redis", False, "fastmcp", "one Daphne on the in-memory layer"),
    (1, "memory", True, "fastmcp", "without --deflate"),
    (1, "memory", False, "lean", "with --client fastmcp only"),
])
def test_the_peer_is_left_out_of_configurations_it_has_no_counterpart_for(daphnes, layer, deflate, client, reason):
    args = Namespace(no_peer=False, daphnes=daphnes, layer=layer, deflate=deflate, client=client)
    assert reason in peer_skipped(args)


def test_our_frames_give_the_seq_and_the_stored_time():
    assert OurFrames.parse(our_frame(3)) == (3, STORED.timestamp())
    assert OurFrames.parse(encode({"type": "caught_up", "last_seq": 0})) == READY
    assert OurFrames.parse(encode({"type": "presence", "data": {"caught_up": True}})) is None
    assert OurFrames.ready_on_open is False


def test_the_peers_frames_give_the_round_from_the_content_and_its_timestamp():
    assert PeerFrames.parse(peer_frame(f"round 0 of {SESSION}")) == (1, STORED.timestamp())
    assert PeerFrames.parse(peer_frame(f"round 11 of {SESSION}", message_id=3)) == (12, STORED.timestamp())
    # A naive timestamp is UTC; none at all leaves the stored-last figure out.
    assert PeerFrames.parse(peer_frame(f"round 1 of {SESSION}", timestamp="2026-05-01T14:00:00.250000")) == (
        2, STORED.timestamp())
    assert PeerFrames.parse(peer_frame(f"round 1 of {SESSION}", timestamp=None)) == (2, None)
    # Its other frames, and messages the rounds did not post, are not counted.
    assert PeerFrames.parse(peer_frame("hello")) is None
    assert PeerFrames.parse(json.dumps({"type": "session_update", "session_id": SESSION, "agent_id": "a"})) is None
    assert PeerFrames.parse("pong") is None
    assert PeerFrames.ready_on_open is True


def test_check_counts_the_peers_doubled_frames_as_duplicates_not_as_disorder():
    want = {1, 2, 3}
    twice = ("ws://peer/ws/a", [1, 1, 2, 2, 3, 3], {}, {})
    assert check([twice], want) == (6, 0, 3, 0)
    gaps = ("ws://peer/ws/a", [1, 3], {}, {})
    late = ("ws://peer/ws/b", [2, 1, 3], {}, {})
    nothing = ("ws://peer/ws/b", [], {}, {})
    assert check([gaps, late, nothing], want) == (5, 1 + 3, 0, 1)


async def serve(frames_for):
    """A WebSocket server on a free port sending ``frames_for(request)`` to each client, then staying open."""
    async def handler(socket):
        for text in frames_for(socket.request):
            await socket.send(text)
        await socket.wait_closed()

    return await websockets.serve(handler, "127.0.0.1", 0)


async def read_all(viewer, seqs, within=5.0):
    deadline = time.monotonic() + within
    while len(viewer.seqs) < seqs and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


async def test_a_peer_viewer_is_connected_at_its_handshake_and_notes_each_message_once():
    server = await serve(lambda request: [json.dumps({"type": "session_update"}), peer_frame(f"round 0 of {SESSION}"),
                                       peer_frame(f"round 0 of {SESSION}"), peer_frame(f"round 1 of {SESSION}")])
    port = server.sockets[0].getsockname()[1]
    viewer = Viewer(f"ws://127.0.0.1:{port}/ws/{SESSION}", {}, None, PeerFrames)
    client = web_client()
    try:
        await viewer.connect(client, deflate=False)
        assert viewer.caught_up.is_set()
        await read_all(viewer, 3)
        assert viewer.seqs == [1, 1, 2]
        assert set(viewer.arrived) == {1, 2}
        assert all(delay > 0 for delay in viewer.after_stored.values())
    finally:
        await viewer.socket.close()
        await client.close()
        server.close()
        await server.wait_closed()


async def test_our_viewer_is_connected_at_caught_up_and_sends_its_headers():
    seen = []

    def frames(request):
        seen.append(request.headers.get("Authorization"))
        return [our_frame(1), encode({"type": "caught_up", "last_seq": 1}), our_frame(2)]

    server = await serve(frames)
    port = server.sockets[0].getsockname()[1]
    viewer = Viewer(f"ws://127.0.0.1:{port}/ws/{SESSION}/", {"Authorization": "Bearer t"}, None, OurFrames)
    client = web_client()
    try:
        await viewer.connect(client, deflate=False)
        assert not viewer.caught_up.is_set()
        await asyncio.wait_for(viewer.caught_up.wait(), 5)
        await read_all(viewer, 2)
        assert viewer.seqs == [1, 2] and seen == ["Bearer t"]
    finally:
        await viewer.socket.close()
        await client.close()
        server.close()
        await server.wait_closed()
