"""Token buckets: at most ``rate`` events per second on average, ``burst`` at once; one per key in ``Limits``."""

import threading
import time
from collections import OrderedDict

from realtime import conf

MAX_BUCKETS = 10_000  # ~200 bytes each: 2 MB at most


class TokenBucket:
    def __init__(self, rate, burst, clock=time.monotonic):
        self.rate = float(rate)
        self.burst = float(burst)
        self.clock = clock
        self.tokens = self.burst
        self.updated = clock()

    def take(self):
        """Spend one token; False when none is left (the caller is over its rate)."""
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def retry_after(self):
        """Seconds until the next token (0 when one is there); call after a refused ``take``."""
        return max(0.0, (1 - self.tokens) / self.rate) if self.rate > 0 else float("inf")


class Limits:
    """A token bucket per key (an agent id, a username), its rate and burst read from two app settings.

    Kept in this process's memory: with several processes, each allows a key its own rate.
    The table holds at most ``max_buckets`` keys; the least recently seen is forgotten
    first (it comes back with a full bucket, which it would have refilled by then anyway).
    """

    def __init__(self, rate_setting, burst_setting, clock=time.monotonic, max_buckets=MAX_BUCKETS):
        self.rate_setting = rate_setting
        self.burst_setting = burst_setting
        self.clock = clock
        self.max_buckets = max_buckets
        self.buckets = OrderedDict()
        self.lock = threading.Lock()  # callers run on pools of threads

    def take(self, key):
        """Spend one event of ``key``'s allowance: 0 if allowed, else the seconds to wait."""
        with self.lock:
            bucket = self.buckets.get(key)
            if bucket is None:
                bucket = TokenBucket(conf.get(self.rate_setting), conf.get(self.burst_setting), self.clock)
                self.buckets[key] = bucket
                if len(self.buckets) > self.max_buckets:
                    self.buckets.popitem(last=False)
            else:
                self.buckets.move_to_end(key)
            if bucket.take():
                return 0
            return max(bucket.retry_after(), 0.001)
