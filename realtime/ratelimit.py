"""A token bucket: at most ``rate`` events per second on average, ``burst`` at once."""

import time


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
