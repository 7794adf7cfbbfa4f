"""Thread-safe request counters of one client."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any


class RequestStats:
    """Counts HTTP requests, retries, 429s, 5xx responses and bytes received (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests = 0
        self._retries = 0
        self._throttled = 0
        self._server_errors = 0
        self._bytes_received = 0
        self._by_kind: Counter[str] = Counter()

    def record_response(self, kind: str, status_code: int | None, bytes_received: int) -> None:
        """Count one HTTP attempt (status None when no response arrived)."""
        with self._lock:
            self._requests += 1
            self._by_kind[kind] += 1
            self._bytes_received += bytes_received
            if status_code == 429:
                self._throttled += 1
            elif status_code is not None and status_code >= 500:
                self._server_errors += 1

    def record_retry(self) -> None:
        """Count one retry (a failed attempt that will be repeated)."""
        with self._lock:
            self._retries += 1

    @property
    def requests(self) -> int:
        """HTTP attempts made, retries included."""
        return self._requests

    @property
    def retries(self) -> int:
        """Attempts that were repeated."""
        return self._retries

    @property
    def throttled(self) -> int:
        """429 responses received."""
        return self._throttled

    @property
    def server_errors(self) -> int:
        """5xx responses received."""
        return self._server_errors

    @property
    def bytes_received(self) -> int:
        """Response body bytes received."""
        return self._bytes_received

    def snapshot(self) -> dict[str, Any]:
        """The counters as a plain dict (by_kind: attempts per request kind)."""
        with self._lock:
            return {
                "requests": self._requests,
                "retries": self._retries,
                "throttled": self._throttled,
                "server_errors": self._server_errors,
                "bytes_received": self._bytes_received,
                "by_kind": dict(self._by_kind),
            }

    def __repr__(self) -> str:
        return f"RequestStats({self.snapshot()!r})"
