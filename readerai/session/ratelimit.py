"""A token bucket: `rate` tokens per second on average, `burst` at once."""

from __future__ import annotations

import time


class TokenBucket:
    """Counts a client's messages; `take()` is False when it is over the limit."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._tokens = float(burst)
        self._stamp = time.monotonic()

    def take(self, cost: float = 1.0) -> bool:
        """Spend `cost` tokens (a message, or bytes of audio) if there are enough."""
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens >= cost:
            self._tokens -= cost
            return True
        return False
