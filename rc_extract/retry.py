"""Retry decisions as small pure callables, plus the tenacity wait/stop adapters that use them."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from tenacity import RetryCallState

from rc_extract.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    InvalidResponseError,
    RateLimitError,
    ServerError,
)
from rc_extract.settings import BACKOFF_BASE_S, DEFAULT_MAX_BACKOFF_S, RETRYABLE_STATUS

_MAX_EXPONENT = 32  # 2**32 half-seconds is far beyond any cap; avoids float overflow


def is_retryable(exc: BaseException) -> bool:
    """True for 429, 500/502/503/504, timeouts, connection errors and invalid 2xx bodies."""
    if isinstance(exc, RateLimitError):
        return True
    if isinstance(exc, ServerError):
        return exc.status_code in RETRYABLE_STATUS
    return isinstance(exc, APIConnectionError | InvalidResponseError)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None if unusable."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds and seconds != float("inf") else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT
        when = when.replace(tzinfo=UTC)
    reference = now or datetime.now(UTC)
    return max(0.0, (when - reference).total_seconds())


def backoff_delay(
    attempt: int,
    *,
    base: float = BACKOFF_BASE_S,
    cap: float = DEFAULT_MAX_BACKOFF_S,
    rand: Callable[[], float] = random.random,
) -> float:
    """Capped exponential backoff with jitter: uniform in [ceiling/2, ceiling], ceiling = base*2^(n-1)."""
    exponent = min(max(attempt - 1, 0), _MAX_EXPONENT)
    ceiling = min(cap, base * (2**exponent))
    return ceiling / 2 + ceiling / 2 * rand()


def wait_for(
    exc: BaseException | None,
    attempt: int,
    *,
    base: float = BACKOFF_BASE_S,
    cap: float = DEFAULT_MAX_BACKOFF_S,
    rand: Callable[[], float] = random.random,
) -> float:
    """How long to wait before repeating a failed attempt: the server's Retry-After, else backoff."""
    if isinstance(exc, APIStatusError) and exc.retry_after is not None:
        return exc.retry_after
    return backoff_delay(attempt, base=base, cap=cap, rand=rand)


def exceeds_deadline(elapsed: float, wait: float, deadline: float) -> bool:
    """True when sleeping `wait` more seconds would end past the deadline."""
    return elapsed + wait > deadline


def retry_reason(exc: BaseException | None) -> str:
    """A short, token-free description of why an attempt failed (for logs)."""
    if isinstance(exc, APIStatusError):
        return f"HTTP {exc.status_code}"
    if isinstance(exc, APITimeoutError):
        return "timeout"
    if isinstance(exc, APIConnectionError):
        return f"connection error ({exc.reason})" if exc.reason else "connection error"
    if isinstance(exc, InvalidResponseError):
        return "invalid response body"
    return type(exc).__name__ if exc is not None else "unknown"


class BackoffWait:
    """tenacity `wait`: Retry-After when the server gave one, else capped jittered backoff."""

    def __init__(
        self,
        *,
        base: float = BACKOFF_BASE_S,
        cap: float = DEFAULT_MAX_BACKOFF_S,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.base = base
        self.cap = cap
        self.rand = rand

    def __call__(self, retry_state: RetryCallState) -> float:
        """The wait before the next attempt."""
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        return wait_for(
            exc, retry_state.attempt_number, base=self.base, cap=self.cap, rand=self.rand
        )


class DeadlineStop:
    """tenacity `stop`: give up when the upcoming sleep would end past the request's deadline."""

    def __init__(self, deadline: float, started: float, clock: Callable[[], float]) -> None:
        self.deadline = deadline
        self.started = started
        self.clock = clock

    def elapsed(self) -> float:
        """Seconds since the logical request started."""
        return self.clock() - self.started

    def __call__(self, retry_state: RetryCallState) -> bool:
        """True to stop retrying."""
        return exceeds_deadline(self.elapsed(), retry_state.upcoming_sleep, self.deadline)
