"""``realtime.live.ws_deflate``: which permessage-deflate offers are accepted, with what bounds.

``test_deflate_e2e.py`` checks the negotiation and the frames against a real Daphne.
"""

from types import SimpleNamespace

from autobahn.websocket.compress import (
    PerMessageBzip2Offer,
    PerMessageDeflate,
    PerMessageDeflateOffer,
)

from realtime.live import ws_deflate


def negotiated(offer):
    accept = ws_deflate.accept([offer])
    return accept, PerMessageDeflate.create_from_offer_accept(True, accept)


def test_an_offer_is_accepted_with_a_small_window_and_no_server_context_takeover():
    accept, compress = negotiated(PerMessageDeflateOffer(accept_max_window_bits=True))
    assert (compress.server_no_context_takeover, compress.server_max_window_bits, compress.mem_level) == (
        True, ws_deflate.WINDOW_BITS, ws_deflate.MEM_LEVEL)
    # The client, which allowed it, is asked for the same window on its side.
    assert accept.get_extension_string() == f"permessage-deflate; client_max_window_bits={ws_deflate.WINDOW_BITS}"
    assert compress.client_max_window_bits == ws_deflate.WINDOW_BITS


def test_what_the_client_asks_for_is_honoured():
    accept, compress = negotiated(PerMessageDeflateOffer(accept_max_window_bits=False, request_max_window_bits=10,
                                                         request_no_context_takeover=True))
    assert (compress.server_max_window_bits, compress.server_no_context_takeover) == (10, True)
    assert accept.get_extension_string() == "permessage-deflate; server_no_context_takeover; server_max_window_bits=10"
    assert compress.client_max_window_bits == 15  # the client did not let the server choose its window
    _, larger = negotiated(PerMessageDeflateOffer(request_max_window_bits=15))
    assert larger.server_max_window_bits == ws_deflate.WINDOW_BITS  # a client's maximum, not a demand


def test_the_first_deflate_offer_is_taken_and_other_extensions_are_not():
    first, second = PerMessageDeflateOffer(request_max_window_bits=11), PerMessageDeflateOffer()
    assert ws_deflate.accept([PerMessageBzip2Offer(), first, second]).offer is first
    assert ws_deflate.accept([PerMessageBzip2Offer()]) is None
    assert ws_deflate.accept([]) is None


def test_a_compressor_is_released_after_a_frame_only_when_it_would_not_be_reused():
    _, compress = negotiated(PerMessageDeflateOffer())
    compress.start_compress_message()
    sent = compress.compress_message_data(b'{"type":"new_message"}') + compress.end_compress_message()
    ws_deflate.release_compressor(SimpleNamespace(_perMessageCompress=compress))
    assert compress._compressor is None
    compress.start_compress_message()  # the next frame gets a fresh one, as it would anyway
    assert compress.compress_message_data(b'{"type":"new_message"}') + compress.end_compress_message() == sent
    keeping = SimpleNamespace(server_no_context_takeover=False, _compressor="context")
    ws_deflate.release_compressor(SimpleNamespace(_perMessageCompress=keeping))
    assert keeping._compressor == "context"
    ws_deflate.release_compressor(SimpleNamespace(_perMessageCompress=None))  # an uncompressed connection
