"""permessage-deflate under Daphne (``SCS_WS_DEFLATE``): which offers are accepted, and with what bounds.

Daphne never accepts a client's permessage-deflate offer; with ``SCS_WS_DEFLATE``,
``realtime.live.daphne_limits.install()`` has Autobahn answer offers with ``accept``.

Memory per connection decides the parameters, for 10,000 connections on one process:

- Server to client, no context takeover: Autobahn then builds a fresh zlib compressor
  for every message, so the one it keeps between messages is of no use and
  ``release_compressor`` drops it after each send. An idle connection holds no
  compressor at all (Autobahn's defaults keep 262 KiB of zlib state per connection
  for good: 2.6 GB for 10,000). The cost is ratio across messages (each frame is
  compressed alone) and one compressor set-up per frame per connection.
- A 4 KiB window (``WINDOW_BITS`` 12) and ``MEM_LEVEL`` 5: a 38 KiB compressor that
  exists only while one frame is compressed, set up in ~7 us (~40 us with zlib's
  defaults, 15 and 8), and no worse a ratio than the defaults on frames up to a few
  KiB, which is what events are (a frame is compressed alone anyway).
- Client to server: the client is asked to use the same 4 KiB window where it lets the
  server choose (browsers and ``websockets`` do), so a connection's decompressor,
  kept for the connection's life once the client sends a compressed frame, stays
  near 11 KiB rather than 40.
"""

from autobahn.websocket.compress import PerMessageDeflateOffer, PerMessageDeflateOfferAccept

WINDOW_BITS = 12  # 4 KiB of history: more than a typical event frame
MEM_LEVEL = 5  # zlib's hash table and block buffer: 16 KiB + 8 KiB (8, the default, is 128 KiB)


def accept(offers):
    """Autobahn's ``perMessageCompressionAccept``: the first permessage-deflate offer among ``offers``,
    accepted with the bounds above, or None (the connection goes on uncompressed)."""
    for offer in offers:
        if isinstance(offer, PerMessageDeflateOffer):
            # A client may ask for a smaller window than ours (server_max_window_bits): it gets it.
            window_bits = min(WINDOW_BITS, offer.request_max_window_bits or WINDOW_BITS)
            return PerMessageDeflateOfferAccept(
                offer, no_context_takeover=True, window_bits=window_bits, mem_level=MEM_LEVEL,
                request_max_window_bits=WINDOW_BITS if offer.accept_max_window_bits else 0)
    return None


def release_compressor(protocol):
    """Drop the zlib compressor a compressed connection kept after a send, when it would not be reused.

    Autobahn makes a new one for the next message when there is none (as on the first)
    or when the server does not take context over; only the latter is released.
    """
    compress = protocol._perMessageCompress
    if compress is not None and compress.server_no_context_takeover:
        compress._compressor = None
