"""The client's retry policy: composable retry decisions, backoff, and tenacity adapters.

A *decision* looks at one failed attempt and answers `RetryOption(do_retry, wait)`, or None
when it has no opinion. `RetryChainDecision` asks its decisions in order and the first one
with an opinion decides; when none has one, the attempt is not retried. The model is
githubkit's `RetryChainDecision`; unlike githubkit's, a decision here can also veto a retry
(answer `RetryOption(False)`) ahead of the decisions that would allow it, so new rules plug
in without editing the existing ones:

    chain = default_retry_decision().prepend(never_retry_tls_errors)   # a veto
    chain = default_retry_decision().prepend(floor_429_waits(2.0))     # a wait rule

The client builds one chain (its `retry` argument) and asks it on every failed attempt; the
request deadline (`DeadlineStop`) still bounds everything.
"""

from __future__ import annotations

import random
import socket
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass
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
from rc_extract.settings import (
    BACKOFF_BASE_S,
    DEFAULT_MAX_BACKOFF_S,
    RATE_LIMIT_FLOOR_S,
    RETRYABLE_STATUS,
)

_MAX_EXPONENT = 32  # 2**32 half-seconds is far beyond any cap; avoids float overflow

# How long a connection error is retried while the host has never answered this client.
FIRST_CONTACT_GRACE_S = 5.0


# -- decisions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FailedAttempt:
    """What a decision gets to look at: the error and where the request stands."""

    exc: BaseException
    attempt: int  # 1 for the first attempt
    elapsed: float  # seconds since the logical request started
    ever_answered: bool = True  # whether the host has sent any HTTP response to this client


@dataclass(frozen=True)
class RetryOption:
    """A decision's answer: retry or not, and the wait before the retry (None = backoff's)."""

    do_retry: bool
    wait: float | None = None


RetryDecision = Callable[[FailedAttempt], RetryOption | None]
NO_RETRY = RetryOption(False)


class RetryChainDecision:
    """Asks its decisions in order; the first that answers decides; no answer = no retry."""

    def __init__(self, *decisions: RetryDecision) -> None:
        self.decisions: tuple[RetryDecision, ...] = decisions

    def __call__(self, failed: FailedAttempt) -> RetryOption:
        """The verdict for one failed attempt."""
        for decision in self.decisions:
            option = decision(failed)
            if option is not None:
                return option
        return NO_RETRY

    def prepend(self, *decisions: RetryDecision) -> RetryChainDecision:
        """A new chain that asks `decisions` first (vetoes and overrides go here)."""
        return RetryChainDecision(*decisions, *self.decisions)

    def append(self, *decisions: RetryDecision) -> RetryChainDecision:
        """A new chain that asks `decisions` after these (new kinds of retryable error)."""
        return RetryChainDecision(*self.decisions, *decisions)

    def __repr__(self) -> str:
        names = ", ".join(getattr(d, "__name__", type(d).__name__) for d in self.decisions)
        return f"RetryChainDecision({names})"


def first_contact_grace(grace_s: float = FIRST_CONTACT_GRACE_S) -> RetryDecision:
    """Connection errors of a host that never answered: retry only for `grace_s` seconds.

    Such a host is most likely a wrong READYCLOUD_BASE_URL or a network outage: a few quick
    tries, not the whole deadline. Timeouts are left to the other decisions.
    """

    def first_contact(failed: FailedAttempt) -> RetryOption | None:
        exc = failed.exc
        if (
            isinstance(exc, APIConnectionError)
            and not isinstance(exc, APITimeoutError)
            and not failed.ever_answered
        ):
            return RetryOption(failed.elapsed < grace_s)
        return None

    return first_contact


REQUEST_TIMEOUT_STATUS = 408  # the one 4xx besides 429 that a repeat can fix


def _causes(exc: BaseException) -> list[BaseException]:
    """`exc` and the exceptions it was raised from (httpx -> httpcore -> ssl/socket)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


_NO_SUCH_HOST = frozenset(
    code
    for code in (getattr(socket, "EAI_NONAME", None), getattr(socket, "EAI_NODATA", None))
    if code is not None
)


def cannot_heal(exc: BaseException) -> str | None:
    """Why retrying `exc` is pointless (a deterministic failure), or None if it might heal.

    A TLS certificate the client rejects, a host name that does not exist (DNS NXDOMAIN) and
    any 4xx except 408 and 429 give the same answer every time.
    """
    if isinstance(exc, APIStatusError):
        code = exc.status_code
        if 400 <= code < 500 and code not in (REQUEST_TIMEOUT_STATUS, 429):
            return f"HTTP {code}"
        return None
    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS certificate not accepted ({cause.verify_message or cause.reason})"
        if isinstance(cause, socket.gaierror) and cause.errno in _NO_SUCH_HOST:
            return "the host name does not exist (DNS)"
    return None


def never_retry_what_cannot_heal(failed: FailedAttempt) -> RetryOption | None:
    """Veto: a rejected TLS certificate or a host name that does not exist is not retried.

    (A 4xx other than 408/429 needs no veto: no decision of the default chain retries it,
    and a decision appended for a special status still can.)
    """
    exc = failed.exc
    if not isinstance(exc, APIConnectionError):
        return None
    why = cannot_heal(exc)
    if why is None:
        return None
    exc.add_note(f"not retried: {why} gives the same answer every time")
    return NO_RETRY


def retry_request_timeout(failed: FailedAttempt) -> RetryOption | None:
    """408 Request Timeout: the server gave up waiting for us; a repeat can succeed."""
    exc = failed.exc
    if isinstance(exc, APIStatusError) and exc.status_code == REQUEST_TIMEOUT_STATUS:
        return RetryOption(True, exc.retry_after)
    return None


def give_up_in(failed: FailedAttempt, deadline: float) -> float:
    """Seconds until the request gives up at the latest (first-contact grace or the deadline)."""
    limit = deadline
    if (
        isinstance(failed.exc, APIConnectionError)
        and not isinstance(failed.exc, APITimeoutError)
        and not failed.ever_answered
    ):
        limit = min(deadline, FIRST_CONTACT_GRACE_S)
    return max(0.0, limit - failed.elapsed)


def retry_rate_limited(failed: FailedAttempt) -> RetryOption | None:
    """429: retry, after the server's Retry-After when it sent one."""
    exc = failed.exc
    if isinstance(exc, RateLimitError):
        return RetryOption(True, exc.retry_after)
    return None


def retry_server_errors(statuses: Iterable[int] = RETRYABLE_STATUS) -> RetryDecision:
    """5xx: retry the given statuses (after Retry-After when sent); the others not."""
    retryable = frozenset(statuses)

    def server_errors(failed: FailedAttempt) -> RetryOption | None:
        exc = failed.exc
        if isinstance(exc, ServerError):
            if exc.status_code in retryable:
                return RetryOption(True, exc.retry_after)
            return NO_RETRY
        return None

    return server_errors


def retry_transport_errors(failed: FailedAttempt) -> RetryOption | None:
    """Timeouts, connection errors and 2xx bodies that are not the documented JSON: retry."""
    if isinstance(failed.exc, APIConnectionError | InvalidResponseError):
        return RetryOption(True)
    return None


def wait_in_budget(max_attempts: int) -> RetryDecision:
    """429 with a shared request budget: retry after the App-wide pause the budget set (the
    client puts it in `retry_after`; it counts against the deadline), at most `max_attempts`."""

    def budget_throttle(failed: FailedAttempt) -> RetryOption | None:
        exc = failed.exc
        if isinstance(exc, RateLimitError):
            return RetryOption(failed.attempt < max_attempts, exc.retry_after)
        return None

    return budget_throttle


def default_retry_decision() -> RetryChainDecision:
    """The client's default chain.

    What cannot heal (veto), first-contact grace, 429, 500/502/503/504, 408, transport errors.
    """
    return RetryChainDecision(
        never_retry_what_cannot_heal,
        first_contact_grace(),
        retry_rate_limited,
        retry_server_errors(),
        retry_request_timeout,
        retry_transport_errors,
    )


def is_retryable(exc: BaseException) -> bool:
    """True when the default chain retries `exc` for a host that has answered before."""
    return default_retry_decision()(FailedAttempt(exc, attempt=1, elapsed=0.0)).do_retry


# -- waits ----------------------------------------------------------------------------------


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


def rate_limit_floor(attempt: int, *, cap: float = DEFAULT_MAX_BACKOFF_S) -> float:
    """The least a 429 waits before attempt `attempt` + 1: 1 s, doubling, up to the cap.

    ReadyCloud asks for exponential back-off from 1 s (API.md §9); a `Retry-After: 0` (or a
    missing header) must not turn a throttled client into a tight loop.
    """
    exponent = min(max(attempt - 1, 0), _MAX_EXPONENT)
    return min(max(cap, RATE_LIMIT_FLOOR_S), RATE_LIMIT_FLOOR_S * (2**exponent))


def wait_for(
    exc: BaseException | None,
    attempt: int,
    *,
    base: float = BACKOFF_BASE_S,
    cap: float = DEFAULT_MAX_BACKOFF_S,
    rand: Callable[[], float] = random.random,
    option: RetryOption | None = None,
) -> float:
    """How long to wait before repeating a failed attempt.

    The deciding RetryOption's wait when it set one, else the server's Retry-After, else
    capped jittered backoff; a 429 never waits less than rate_limit_floor, whoever decided
    (a shared, cross-process back-off may wrap this and wait longer, never shorter).
    """
    if option is not None and option.wait is not None:
        wait = option.wait
    elif isinstance(exc, APIStatusError) and exc.retry_after is not None:
        wait = exc.retry_after
    else:
        wait = backoff_delay(attempt, base=base, cap=cap, rand=rand)
    if isinstance(exc, RateLimitError):
        wait = max(wait, rate_limit_floor(attempt, cap=cap))
    return wait


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


# -- tenacity adapters ---------------------------------------------------------------------


class DecisionRetry:
    """tenacity `retry` and `wait` for one request, driven by a RetryChainDecision.

    `retry` asks the chain and keeps its answer; `wait` uses that answer's wait, else the
    server's Retry-After, else capped jittered backoff.
    """

    def __init__(
        self,
        decision: RetryChainDecision,
        stop: DeadlineStop,
        *,
        ever_answered: Callable[[], bool] = lambda: True,
        base: float = BACKOFF_BASE_S,
        cap: float = DEFAULT_MAX_BACKOFF_S,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.decision = decision
        self.stop = stop
        self.ever_answered = ever_answered
        self.base = base
        self.cap = cap
        self.rand = rand
        self.last: RetryOption = NO_RETRY

    def retry(self, retry_state: RetryCallState) -> bool:
        """True to retry the failed attempt."""
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if exc is None:
            self.last = NO_RETRY
            return False
        failed = FailedAttempt(
            exc,
            attempt=retry_state.attempt_number,
            elapsed=self.stop.elapsed(),
            ever_answered=self.ever_answered(),
        )
        self.last = self.decision(failed)
        return self.last.do_retry

    def wait(self, retry_state: RetryCallState) -> float:
        """The wait before the next attempt."""
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        return wait_for(
            exc,
            retry_state.attempt_number,
            base=self.base,
            cap=self.cap,
            rand=self.rand,
            option=self.last,
        )


class DeadlineStop:
    """tenacity `stop`: give up when the upcoming sleep would end past the request's deadline."""

    def __init__(self, deadline: float, started: float, clock: Callable[[], float]) -> None:
        self.deadline = deadline
        self.started = started
        self.clock = clock
        self.excluded = 0.0

    def exclude(self, seconds: float) -> None:
        """Do not count `seconds` (spent waiting for the request budget) against the deadline."""
        self.excluded += max(0.0, seconds)

    def elapsed(self) -> float:
        """Seconds since the logical request started, less the time spent waiting for budget."""
        return self.clock() - self.started - self.excluded

    def __call__(self, retry_state: RetryCallState) -> bool:
        """True to stop retrying."""
        return exceeds_deadline(self.elapsed(), retry_state.upcoming_sleep, self.deadline)
