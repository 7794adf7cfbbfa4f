"""The request budget: DRF-style rate strings, the limiter interface the client draws from, and
an in-process implementation of it.

ReadyCloud allows one App at most N GET requests in a window (API.md §9: 30 a minute). The
client asks a `RequestBudget` before every attempt (`acquire`) and tells it about every 429
(`throttled`). The budget that is shared between processes lives in the warehouse
(`warehouse.budget.LedgerBudget`); this module holds what needs no database: the rate, the
policy (sliding window, reserved share for refresh work, App-wide pause after a 429) and
`LocalBudget`, which applies the same policy inside one process.

Policy (docs/design.md, "The request budget"):
- at most `limit` requests in any sliding window of `period_s` seconds;
- work has a priority: `refresh` (incremental syncs of orgs that have a watermark) or `bulk`
  (first loads, full refreshes, backfills, reconciles, checks, plans). While refresh work has
  asked for budget within the last window, bulk work may use at most `BULK_SHARE` of any
  window, so a refresh always finds at least 1 - BULK_SHARE of the budget;
- a 429 pauses every request of the App until the pause ends: the server's Retry-After when
  it is longer than the doubling floor (1, 2, 4 … 128 s with jitter, ReadyCloud's documented
  back-off), else the floor. Consecutive 429s double the floor; a quiet spell resets it.
"""

from __future__ import annotations

import math
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Literal, Protocol

Priority = Literal["refresh", "bulk"]
PURPOSES = ("list", "compact", "detail", "probe", "check", "retry")
DEFAULT_RATE = "30/min"
# Share of any window that bulk work may use while refresh work is waiting (or recently was).
BULK_SHARE = 0.8
# The App-wide pause after a 429: ReadyCloud's documented back-off, 1 s doubling up to 128 s.
THROTTLE_BASE_S = 1.0
THROTTLE_CAP_S = 128.0
THROTTLE_JITTER = 0.25  # up to +25 % so that clients sharing an App do not retry in step
# A 429 more than this long after the previous pause ended starts again from the base pause.
THROTTLE_RESET_S = 300.0
# Longest single sleep while waiting, so a waiting run re-checks (and can be interrupted).
MAX_SLEEP_S = 2.0

_UNITS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0}
_UNITS |= {"h": 3600.0, "hour": 3600.0, "d": 86400.0, "day": 86400.0}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*(?:\.\d+)?)\s*([a-z]+)\s*$", re.IGNORECASE)


class RateError(ValueError):
    """A rate string that cannot be understood."""


@dataclass(frozen=True)
class Rate:
    """At most `limit` requests in any window of `period_s` seconds."""

    limit: int
    period_s: float

    def __post_init__(self) -> None:
        if self.limit < 1 or self.period_s <= 0:
            raise RateError("a rate needs at least 1 request per positive period")

    def __str__(self) -> str:
        names = {1.0: "s", 60.0: "min", 3600.0: "h", 86400.0: "d"}
        unit = names.get(self.period_s, f"{self.period_s:g}s")
        return f"{self.limit}/{unit}"

    @property
    def guarded_period_s(self) -> float:
        """The window the client counts: a little longer than the server's, because a request
        reaches the server a moment after it was granted (5 % of the period, at most 1 s)."""
        return self.period_s + min(1.0, 0.05 * self.period_s)

    @property
    def per_second(self) -> float:
        """The long-run request rate."""
        return self.limit / self.period_s

    def cap(self, priority: Priority, refresh_waiting: bool) -> int:
        """How many requests of this priority may be in one window."""
        if priority == "bulk" and refresh_waiting:
            return max(1, math.floor(self.limit * BULK_SHARE))
        return self.limit

    def seconds_for(self, requests: int) -> float:
        """Wall time of `requests` back-to-back requests starting with an empty window."""
        if requests <= self.limit:
            return 0.0
        return math.floor((requests - 1) / self.limit) * self.period_s


def parse_rate(text: str | None) -> Rate | None:
    """`30/min`, `5/s`, `1000/h`, `20000/d`, `20/4s` (a 4-second window) → Rate; `off` → None.

    The format is Django REST framework's throttle rate, extended with a window length.
    """
    value = (text or "").strip().lower()
    if value in ("off", "none", "0", "unlimited", "false", "no"):
        return None
    match = _RATE.match(value)
    if not match:
        raise RateError(
            f"READYCLOUD_RATE_LIMIT: cannot read {text!r}; write N/s, N/min, N/h, N/d or N/<k>s "
            "(a window of k seconds, e.g. 20/4s), or off"
        )
    count, multiple, unit = match.groups()
    plural = unit[:-1] if unit.endswith("s") and len(unit) > 3 else None
    seconds = _UNITS.get(unit) or (_UNITS.get(plural) if plural else None)
    if seconds is None:
        raise RateError(f"READYCLOUD_RATE_LIMIT: unknown period {unit!r} in {text!r}")
    factor = float(multiple) if multiple else 1.0
    try:
        return Rate(int(count), seconds * factor)
    except RateError as exc:
        raise RateError(f"READYCLOUD_RATE_LIMIT: {exc} (got {text!r})") from None


def throttle_pause(
    level: int, retry_after: float | None, rand: Callable[[], float] = random.random
) -> float:
    """The App-wide pause after the `level`-th consecutive 429 (level 1 = first)."""
    exponent = min(max(level - 1, 0), 16)
    floor = min(THROTTLE_CAP_S, THROTTLE_BASE_S * 2**exponent) * (1 + THROTTLE_JITTER * rand())
    if retry_after is not None and retry_after > floor:
        return float(retry_after)
    return floor


# -- who is asking: purpose and priority travel with the call, not through every signature --

_PURPOSE: ContextVar[str | None] = ContextVar("rc_extract_purpose", default=None)
_PRIORITY: ContextVar[Priority] = ContextVar("rc_extract_priority", default="bulk")


@contextmanager
def purpose(name: str) -> Iterator[None]:
    """Count the requests made inside the block as `name` (probe, check, ...)."""
    if name not in PURPOSES:
        raise ValueError(f"unknown request purpose {name!r}; choose from {PURPOSES}")
    token = _PURPOSE.set(name)
    try:
        yield
    finally:
        _PURPOSE.reset(token)


@contextmanager
def priority(level: Priority) -> Iterator[None]:
    """Draw the requests made inside the block from the budget with this priority."""
    token = _PRIORITY.set(level)
    try:
        yield
    finally:
        _PRIORITY.reset(token)


def purpose_override() -> str | None:
    """The purpose set by an enclosing `purpose()` block, if any."""
    return _PURPOSE.get()


def current_priority() -> Priority:
    """The priority set by an enclosing `priority()` block (bulk by default)."""
    return _PRIORITY.get()


# -- the interface the client uses ---------------------------------------------------------

WaitListener = Callable[[float, str], None]


class RequestBudget(Protocol):
    """What the client needs from a limiter: permission per attempt, and news of 429s."""

    rate: Rate | None

    def acquire(self, purpose: str, priority: Priority) -> float:
        """Block until one request may be sent, record it, return the seconds waited."""
        ...  # pragma: no cover

    def throttled(self, retry_after: float | None) -> float:
        """Pause the whole App after a 429; return the pause that now applies (seconds)."""
        ...  # pragma: no cover


class PollingBudget:
    """The waiting loop shared by the implementations: ask `_try`, sleep, ask again.

    Subclasses implement `_try` (grant and record one request, or say how long to wait and
    why) and `_throttle` (record a 429). `on_wait(seconds, reason)` is told before each sleep,
    so a run can say why it waits.
    """

    def __init__(
        self,
        rate: Rate | None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.rate = rate
        self._sleep = sleep
        self._clock = clock
        self._rand = rand
        self.listeners: list[WaitListener] = []
        self._waited_lock = threading.Lock()
        self.waited_s = 0.0  # total seconds this process spent waiting for budget

    def _try(self, purpose: str, priority: Priority) -> tuple[float, str]:
        raise NotImplementedError

    def _throttle(self, retry_after: float | None) -> float:
        raise NotImplementedError

    def acquire(self, purpose: str, priority: Priority) -> float:
        """Block until one request may be sent, record it, return the seconds waited."""
        started = self._clock()
        while True:
            wait, reason = self._try(purpose, priority)
            if wait <= 0:
                waited = self._clock() - started
                if waited > 0:
                    with self._waited_lock:
                        self.waited_s += waited
                return waited
            for listener in list(self.listeners):
                listener(wait, reason)
            # A little jitter so processes polling one ledger do not wake in step.
            self._sleep(min(wait, MAX_SLEEP_S) + 0.02 * self._rand())

    def throttled(self, retry_after: float | None) -> float:
        """Pause the whole App after a 429; return the pause that now applies (seconds)."""
        return self._throttle(retry_after)


class LocalBudget(PollingBudget):
    """The budget policy inside one process (threads share it); no other process sees it.

    Used when there is no warehouse to share a ledger through, and by tests.
    """

    def __init__(
        self,
        rate: Rate | None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        super().__init__(rate, sleep=sleep, clock=clock, rand=rand)
        self._lock = threading.Lock()
        self._grants: deque[tuple[float, Priority]] = deque()
        self._refresh_seen = -math.inf
        self._paused_until = -math.inf
        self._level = 0
        self.granted: dict[str, int] = {}

    def _try(self, purpose: str, priority: Priority) -> tuple[float, str]:
        with self._lock:
            now = self._clock()
            if priority == "refresh":
                self._refresh_seen = now
            if now < self._paused_until:
                return self._paused_until - now, "paused after a 429 from the API"
            rate = self.rate
            if rate is not None:
                period = rate.guarded_period_s
                while self._grants and self._grants[0][0] <= now - period:
                    self._grants.popleft()
                waiting = now - self._refresh_seen < period
                cap = rate.cap(priority, waiting)
                mine = [t for t, p in self._grants if priority == "refresh" or p == "bulk"]
                if len(self._grants) >= rate.limit or len(mine) >= cap:
                    oldest = (
                        self._grants[len(self._grants) - rate.limit][0]
                        if len(self._grants) >= rate.limit
                        else mine[len(mine) - cap]
                    )
                    return max(oldest + period - now, 0.001), f"budget {rate} used"
            self._grants.append((now, priority))
            self.granted[purpose] = self.granted.get(purpose, 0) + 1
            return 0.0, ""

    def _throttle(self, retry_after: float | None) -> float:
        with self._lock:
            now = self._clock()
            if now < self._paused_until:  # another request's 429 already paused the App
                return self._paused_until - now
            recent = now - self._paused_until < THROTTLE_RESET_S
            self._level = self._level + 1 if recent else 1
            pause = throttle_pause(self._level, retry_after, self._rand)
            self._paused_until = now + pause
            return pause
