"""The API server's clock, as its responses tell it (the `Date` header of each response).

Windows and watermarks are compared with `nested_updated_at`, which the server stamps with its
own clock; the upper bound of a window must therefore be the server's "now", not this
machine's. A client clock a day ahead would otherwise set a watermark a day in the future
(changes in between never read), and a day behind would leave the last day unread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

from rc_common.timefmt import utc_now

logger = logging.getLogger(__name__)

DEFAULT_SKEW_WARNING_S = 60.0
# Offsets this small are within what a `Date` header can tell (one-second resolution plus the
# time a response spends in flight): the local clock is then the more precise one, and a
# remaining skew of a few seconds is covered by the incremental overlap (RC_SYNC_OVERLAP_SECONDS).
TRUST_LOCAL_WITHIN_S = 5.0


class ServerClock:
    """Estimates the server's time as local time plus the offset seen in `Date` headers.

    `Date` has one-second resolution and is stamped before the response travels, so every
    observation is a lower bound of the true offset; the largest one seen is kept. Beyond
    TRUST_LOCAL_WITHIN_S the estimate lags the server by at most a second plus the latency: a
    safe upper bound for a window (a change above it is read by the next run). Within it, and
    without any `Date` header, the local clock is used.
    """

    def __init__(
        self,
        *,
        skew_warning_s: float = DEFAULT_SKEW_WARNING_S,
        wall: Callable[[], datetime] = utc_now,
    ) -> None:
        self.skew_warning_s = skew_warning_s
        self._wall = wall
        self._offset: timedelta | None = None
        self._warned = False
        self._lock = threading.Lock()

    @property
    def offset(self) -> timedelta | None:
        """Server time minus local time from the latest `Date` header (None before any)."""
        with self._lock:
            return self._offset

    def observe(self, date_header: str | None, received_at: datetime | None = None) -> None:
        """Take the offset from one response's `Date` header (ignored when absent or bad)."""
        if not date_header:
            return
        try:
            stamp = parsedate_to_datetime(date_header)
        except (TypeError, ValueError, IndexError, OverflowError):
            return
        if stamp is None or stamp.tzinfo is None:
            return
        offset = stamp - (received_at or self._wall())
        with self._lock:
            if self._offset is not None and abs((offset - self._offset).total_seconds()) < 60:
                offset = max(offset, self._offset)  # the tightest lower bound so far
            self._offset = offset
            warn = not self._warned and abs(offset.total_seconds()) > self.skew_warning_s
            self._warned = self._warned or warn
        if warn:
            ahead = "behind" if offset.total_seconds() > 0 else "ahead of"
            logger.warning(
                "this machine's clock is %s the API server's by %.0f s; rc-sync uses the "
                "server's time for windows and watermarks, but check the clock (NTP)",
                ahead,
                abs(offset.total_seconds()),
            )

    def now(self) -> datetime:
        """The server's current time: local time plus the offset seen, when it is beyond what
        a `Date` header can resolve (local time when no header was seen yet)."""
        offset = self.offset
        if offset is None or abs(offset.total_seconds()) <= TRUST_LOCAL_WITHIN_S:
            return self._wall()
        return self._wall() + offset
