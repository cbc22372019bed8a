"""Tool calls per agent: a token bucket per agent id (``SCS_TOOL_RATE`` per second, ``SCS_TOOL_BURST`` at once).

Kept in this process's memory: with several sidecars, each allows an agent its own rate.
The table holds at most ``MAX_BUCKETS`` agents; the least recently seen is forgotten
first (it comes back with a full bucket, which it would have refilled by then anyway).
"""

import threading
import time
from collections import OrderedDict

from realtime import conf
from realtime.ratelimit import TokenBucket

MAX_BUCKETS = 10_000  # ~200 bytes each: 2 MB at most


class ToolLimits:
    def __init__(self, clock=time.monotonic, max_buckets=MAX_BUCKETS):
        self.clock = clock
        self.max_buckets = max_buckets
        self.buckets = OrderedDict()
        self.lock = threading.Lock()  # tools run on a pool of threads

    def take(self, key):
        """Spend one call of ``key``'s allowance: 0 if allowed, else the seconds to wait."""
        with self.lock:
            bucket = self.buckets.get(key)
            if bucket is None:
                bucket = TokenBucket(conf.get("SCS_TOOL_RATE"), conf.get("SCS_TOOL_BURST"), self.clock)
                self.buckets[key] = bucket
                if len(self.buckets) > self.max_buckets:
                    self.buckets.popitem(last=False)
            else:
                self.buckets.move_to_end(key)
            if bucket.take():
                return 0
            return max(bucket.retry_after(), 0.001)


tool_limits = ToolLimits()
