"""Link-miss throttling: an address that keeps trying unknown links is slowed, then refused, on its own.

Tokens carry 256 random bits, so guessing is hopeless anyway; the throttle keeps a scanner from hammering the
database and from filling logs. Counts live in this process's memory (each worker counts on its own).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

# Beyond this many addresses, the stalest are forgotten: an attacker with many addresses gains nothing here
# that a bigger window would stop, and memory stays bounded.
MAX_ADDRESSES = 10_000
MAX_DELAY_SECONDS = 2.0


@dataclass(frozen=True)
class Verdict:
    """``retry_after`` > 0: refuse now (429). Otherwise wait ``delay`` seconds before answering."""

    delay: float = 0.0
    retry_after: int = 0


class LinkMisses:
    """Misses per address in a sliding window of ``window`` seconds; at ``limit`` misses the address is refused.

    From half the limit on, each request from the address waits a little longer first (up to two seconds),
    which only the missing address notices: the wait is asynchronous and holds no database connection.
    """

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._misses: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, address: str, now: float) -> deque[float] | None:
        misses = self._misses.get(address)
        if misses is None:
            return None
        while misses and misses[0] <= now - self.window:
            misses.popleft()
        if not misses:
            del self._misses[address]
            return None
        return misses

    def check(self, address: str) -> Verdict:
        """What to do with a request from ``address`` before looking at its link."""
        with self._lock:
            now = self.clock()
            misses = self._recent(address, now)
            count = len(misses) if misses is not None else 0
            if misses is not None and count >= self.limit:
                # Refused until enough old misses leave the window to bring the count under the limit.
                oldest_to_expire = misses[count - self.limit]
                return Verdict(retry_after=max(1, math.ceil(oldest_to_expire + self.window - now)))
        soft = self.limit // 2
        if count <= soft:
            return Verdict()
        return Verdict(delay=min(MAX_DELAY_SECONDS, 0.05 * 2 ** (count - soft - 1)))

    def miss(self, address: str) -> None:
        """Count an unknown link from ``address``."""
        with self._lock:
            now = self.clock()
            misses = self._recent(address, now)
            if misses is None:
                if len(self._misses) >= MAX_ADDRESSES:
                    stalest = min(self._misses, key=lambda a: self._misses[a][-1])
                    del self._misses[stalest]
                misses = self._misses[address] = deque()
            misses.append(now)
            while len(misses) > self.limit:
                misses.popleft()

    def reset(self) -> None:
        with self._lock:
            self._misses.clear()
