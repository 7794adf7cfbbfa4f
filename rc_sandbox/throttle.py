"""The sandbox's rate limit: Django REST framework's SimpleRateThrottle, per token.

DRF keeps, per client, the times of the requests it allowed; a request is refused while
`limit` of them lie within the last `period` seconds (a sliding window), and the refusal says
how long until the oldest one leaves the window. Refused requests are not recorded.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class SlidingThrottle:
    """Per-key sliding-window counter (thread-safe)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._history: dict[str, deque[float]] = {}

    def check(self, key: str, limit: int, period_s: float) -> float | None:
        """Allow and record one request (None), or the seconds until one would be allowed."""
        with self._lock:
            now = self._clock()
            history = self._history.setdefault(key, deque())
            while history and history[0] <= now - period_s:
                history.popleft()
            if len(history) >= limit:
                return history[len(history) - limit] + period_s - now
            history.append(now)
            return None
