"""The garbage collector's thresholds, for the long-running processes: Daphne and the MCP sidecar.

``(SCS_GC_THRESHOLD, 20, 100)``: the young generation is collected every 50,000
allocations by default rather than Python's 700, the middle one every 20 of those,
and a full collection is considered every 100 of those, when long-lived objects
also grew by a quarter (Python's own rule). ``realtime.live.daphne_limits`` gives
Daphne's figures. In the sidecar each tool call allocates thousands of tracked
objects (the MCP framing, pydantic models, ORM rows), nearly all freed by reference
counting, so Python's thresholds ran a young collection every few calls and a middle
one (3-25 ms, every call in flight waiting) every few dozen.

``freeze`` first moves what start-up built (imports, settings, the tool registry:
about 180,000 objects in the sidecar) out of the collector's reach, so a full
collection walks only what the process made since; those objects are never freed,
as they would not have been anyway.
"""

import gc

from realtime import conf

GC_MIN_THRESHOLD = 700  # Python's default first threshold
GC_YOUNGER_COLLECTIONS = 20  # young collections between two of the middle generation (Python: 10)
GC_OLDER_COLLECTIONS = 100  # middle-generation collections before a full one is considered (Python: 10)


def tune(*, freeze=False):
    """Set the thresholds from ``SCS_GC_THRESHOLD`` (never below Python's own: 0 would turn collection off);
    with ``freeze``, collect once and freeze every object alive now (call it once start-up is over)."""
    if freeze:
        gc.collect()
        gc.freeze()
    gc.set_threshold(max(GC_MIN_THRESHOLD, int(conf.get("SCS_GC_THRESHOLD"))), GC_YOUNGER_COLLECTIONS,
                     GC_OLDER_COLLECTIONS)
