"""Retries: the pure decisions, and the client retrying each retryable failure within its deadline."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from rc_extract.client import ReadyCloudClient
from rc_extract.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    InvalidResponseError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
)
from rc_extract.retry import (
    backoff_delay,
    exceeds_deadline,
    is_retryable,
    parse_retry_after,
    retry_reason,
    wait_for,
)

MakeClient = Callable[..., ReadyCloudClient]
TOKEN = "0123456789abcdef0123456789abcdef"
PAGE = {"count": 1, "next": None, "previous": None, "results": [{"url": "/api/v2/orgs/7/"}]}


# -- pure decisions -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (RateLimitError(429, "/p"), True),
        (ServerError(500, "/p"), True),
        (ServerError(502, "/p"), True),
        (ServerError(503, "/p"), True),
        (ServerError(504, "/p"), True),
        (ServerError(501, "/p"), False),
        (ServerError(505, "/p"), False),
        (APITimeoutError("https://h", "/p", "timed out"), True),
        (APIConnectionError("https://h", "/p", "refused"), True),
        (InvalidResponseError("garbage", "/p"), True),
        (AuthenticationError(401, "/p"), False),
        (PermissionDeniedError(403, "/p"), False),
        (NotFoundError(404, "/p"), False),
        (APIStatusError(400, "/p"), False),
        (ValueError("x"), False),
    ],
)
def test_is_retryable(exc: BaseException, expected: bool) -> None:
    assert is_retryable(exc) is expected


def test_parse_retry_after_seconds_and_dates() -> None:
    now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after(" 2.5 ", now) == 2.5
    assert parse_retry_after("-3", now) == 0.0
    assert parse_retry_after("Wed, 01 May 2024 12:00:30 GMT", now) == 30.0
    assert parse_retry_after("Wed, 01 May 2024 11:00:00 GMT", now) == 0.0
    for junk in (None, "", "soon", "nan", "inf", "Wed, 99 Foo 2024"):
        assert parse_retry_after(junk, now) is None


def test_backoff_is_exponential_capped_and_jittered() -> None:
    low = [backoff_delay(n, base=0.5, cap=8, rand=lambda: 0.0) for n in range(1, 8)]
    high = [backoff_delay(n, base=0.5, cap=8, rand=lambda: 1.0) for n in range(1, 8)]
    assert high == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert low == [h / 2 for h in high]
    assert backoff_delay(10_000, cap=30, rand=lambda: 1.0) == 30


def test_wait_prefers_retry_after() -> None:
    throttled = RateLimitError(429, "/p", retry_after=42.0)
    assert wait_for(throttled, 1, cap=5) == 42.0
    assert wait_for(ServerError(503, "/p"), 3, base=1, cap=30, rand=lambda: 1.0) == 4.0


def test_deadline_and_reason_helpers() -> None:
    assert exceeds_deadline(10, 5, 14)
    assert not exceeds_deadline(10, 4, 14)
    assert retry_reason(ServerError(503, "/p")) == "HTTP 503"
    assert retry_reason(APITimeoutError("https://h", "/p")) == "timeout"
    assert retry_reason(InvalidResponseError("x", "/p")) == "invalid response body"


# -- the client retries -------------------------------------------------------------------


def _flaky(
    *failures: Callable[[httpx.Request], httpx.Response],
) -> Callable[[httpx.Request], httpx.Response]:
    """A handler that fails with each given response in turn, then serves PAGE."""
    queue = list(failures)

    def handler(request: httpx.Request) -> httpx.Response:
        if queue:
            return queue.pop(0)(request)
        return httpx.Response(200, json=PAGE)

    return handler


def _raise(exc_type: type[Exception]) -> Callable[[httpx.Request], httpx.Response]:
    def fail(request: httpx.Request) -> httpx.Response:
        raise exc_type("simulated", request=request)  # type: ignore[call-arg]

    return fail


def _status(code: int, **kw: Any) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(code, **kw)


RETRYABLE: dict[str, Callable[[httpx.Request], httpx.Response]] = {
    "500": _status(500, text="Internal Server Error"),
    "502": _status(502, text="<html>Bad gateway</html>"),
    "503": _status(503, json={"detail": "Service unavailable"}),
    "504": _status(504),
    "timeout": _raise(httpx.ReadTimeout),
    "connect-timeout": _raise(httpx.ConnectTimeout),
    "connection-refused": _raise(httpx.ConnectError),
    "connection-dropped": _raise(httpx.RemoteProtocolError),
    "invalid-json": _status(200, text="<html>maintenance</html>"),
    "truncated": _status(
        200, content=b'{"count": 1, "next": null, "results": [{"url": "/api/v2/or'
    ),
    "empty-body": _status(200, content=b""),
    "bad-envelope-count": _status(200, json={"count": "many", "next": None, "results": []}),
    "bad-envelope-results": _status(200, json={"count": 1, "next": None}),
    "bad-envelope-next": _status(200, json={"count": 1, "next": 3, "results": []}),
    "bad-envelope-items": _status(200, json={"count": 1, "next": None, "results": ["x"]}),
    "not-an-envelope": _status(200, json=[1, 2]),
    "429-no-header": _status(429, json={"detail": "Request was throttled."}),
}


@pytest.mark.parametrize("name", sorted(RETRYABLE))
def test_each_retryable_failure_is_retried(
    make_client: MakeClient, clock: Any, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(_flaky(RETRYABLE[name], RETRYABLE[name]))
    with caplog.at_level(logging.WARNING, logger="rc_extract.client"):
        orgs = client.list_orgs()
    assert orgs == PAGE["results"]
    snap = client.stats.snapshot()
    assert snap["retries"] == 2
    assert snap["requests"] == 3
    if name.startswith("429"):  # a 429 waits at least the floor: 1 s, doubling
        assert clock.sleeps == [1.0, 2.0]
    else:  # jittered backoff with rand=0.5: 0.5*0.75, 1.0*0.75
        assert clock.sleeps == [0.375, 0.75]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert warnings[0].startswith("GET /api/v2/orgs/?limit=100 failed (")
    if not name.startswith("429"):
        assert "retry 1 in 0.4s" in warnings[0] and "retry 2 in 0.8s" in warnings[1]
    assert all(TOKEN not in w for w in warnings)


def test_429_retry_after_seconds_is_honoured(make_client: MakeClient, clock: Any, kit: Any) -> None:
    body = kit.load("error_429_drf.json")
    client = make_client(_flaky(_status(429, json=body, headers={"Retry-After": "7"})))
    assert client.list_orgs() == PAGE["results"]
    assert clock.sleeps == [7.0]
    snap = client.stats.snapshot()
    assert snap["throttled"] == 1 and snap["retries"] == 1


def test_429_retry_after_http_date_is_honoured(make_client: MakeClient, clock: Any) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    client = make_client(_flaky(_status(429, headers={"Retry-After": when})))
    client.list_orgs()
    (slept,) = clock.sleeps
    assert 27 <= slept <= 31


def test_503_retry_after_is_honoured(make_client: MakeClient, clock: Any) -> None:
    client = make_client(_flaky(_status(503, headers={"Retry-After": "3"})))
    client.list_orgs()
    assert clock.sleeps == [3.0]
    assert client.stats.snapshot()["server_errors"] == 1


def test_retry_after_past_the_deadline_fails_at_once(make_client: MakeClient, clock: Any) -> None:
    client = make_client(
        _status(429, json={"detail": "Slow down"}, headers={"Retry-After": "120"}), deadline=60
    )
    with pytest.raises(RateLimitError) as info:
        client.list_orgs()
    assert clock.sleeps == []
    message = str(info.value)
    assert "Retry-After" in message and "deadline of 60s" in message and "Slow down" in message
    assert info.value.retry_after == 120.0


def test_throttled_until_the_deadline(make_client: MakeClient, clock: Any) -> None:
    client = make_client(_status(429, headers={"Retry-After": "10"}), deadline=45)
    with pytest.raises(RateLimitError, match="deadline of 45s"):
        client.list_orgs()
    assert clock.sleeps == [10.0, 10.0, 10.0, 10.0]
    assert client.stats.snapshot()["throttled"] == 5


def test_server_errors_until_the_deadline(make_client: MakeClient, clock: Any) -> None:
    client = make_client(_status(503), deadline=20, max_backoff=4)
    with pytest.raises(ServerError) as info:
        client.list_orgs()
    assert sum(clock.sleeps) <= 20
    assert max(clock.sleeps) <= 4
    assert any("gave up after" in note for note in getattr(info.value, "__notes__", []))
    assert client.stats.snapshot()["retries"] == len(clock.sleeps)


def test_timeouts_until_the_deadline(make_client: MakeClient, clock: Any) -> None:
    client = make_client(_raise(httpx.ReadTimeout), deadline=5)
    with pytest.raises(APITimeoutError, match="READYCLOUD_BASE_URL"):
        client.list_orgs()
    assert sum(clock.sleeps) <= 5


@pytest.mark.parametrize("code", [400, 401, 403, 404, 405, 409, 422, 501])
def test_other_statuses_fail_at_once(make_client: MakeClient, clock: Any, code: int) -> None:
    client = make_client(_status(code, json={"detail": "nope"}))
    with pytest.raises(APIStatusError) as info:
        client.get_json("orgs/")
    assert info.value.status_code == code
    assert clock.sleeps == []
    assert client.stats.requests == 1


# -- the decision chain -------------------------------------------------------------------


def _failed(exc: BaseException, *, elapsed: float = 0.0, answered: bool = True) -> Any:
    from rc_extract.retry import FailedAttempt

    return FailedAttempt(exc, attempt=1, elapsed=elapsed, ever_answered=answered)


def test_the_first_decision_with_an_opinion_decides() -> None:
    from rc_extract.retry import RetryChainDecision, RetryOption, default_retry_decision

    chain = default_retry_decision()
    assert chain(_failed(ServerError(503, "/p", retry_after=7.0))) == RetryOption(True, 7.0)
    assert chain(_failed(ServerError(501, "/p"))) == RetryOption(False)
    assert chain(_failed(NotFoundError(404, "/p"))) == RetryOption(False)  # nobody answers
    assert RetryChainDecision()(_failed(RateLimitError(429, "/p"))).do_retry is False


def test_a_prepended_decision_can_veto_or_change_the_wait() -> None:
    from rc_extract.retry import FailedAttempt, RetryOption, default_retry_decision

    def no_tls(failed: FailedAttempt) -> RetryOption | None:
        reason = getattr(failed.exc, "reason", "")
        return RetryOption(False) if "CERTIFICATE" in reason else None

    def floor_429(failed: FailedAttempt) -> RetryOption | None:
        if isinstance(failed.exc, RateLimitError):
            return RetryOption(True, max(2.0, failed.exc.retry_after or 0.0))
        return None

    chain = default_retry_decision().prepend(no_tls, floor_429)
    tls = APIConnectionError("https://h", "/p", "CERTIFICATE_VERIFY_FAILED")
    assert chain(_failed(tls)).do_retry is False
    assert chain(_failed(APIConnectionError("https://h", "/p", "reset"))).do_retry is True
    assert chain(_failed(RateLimitError(429, "/p", retry_after=0.5))) == RetryOption(True, 2.0)
    assert "no_tls" in repr(chain)


def test_an_appended_decision_adds_a_retryable_error() -> None:
    from rc_extract.retry import FailedAttempt, RetryOption, default_retry_decision

    def retry_409(failed: FailedAttempt) -> RetryOption | None:
        exc = failed.exc
        return (
            RetryOption(True)
            if isinstance(exc, APIStatusError) and exc.status_code == 409
            else None
        )

    assert not default_retry_decision()(_failed(APIStatusError(409, "/p"))).do_retry
    assert default_retry_decision().append(retry_409)(_failed(APIStatusError(409, "/p"))).do_retry


def test_first_contact_grace_limits_connection_errors_of_a_silent_host() -> None:
    from rc_extract.retry import default_retry_decision

    refused = APIConnectionError("https://h", "/p", "refused")
    chain = default_retry_decision()
    assert chain(_failed(refused, elapsed=1.0, answered=False)).do_retry is True
    assert chain(_failed(refused, elapsed=6.0, answered=False)).do_retry is False
    assert chain(_failed(refused, elapsed=6.0, answered=True)).do_retry is True
    timeout = APITimeoutError("https://h", "/p", "timed out")
    assert chain(_failed(timeout, elapsed=60.0, answered=False)).do_retry is True


def test_the_client_asks_its_chain(make_client: MakeClient, clock: Any) -> None:
    from rc_extract.retry import FailedAttempt, RetryOption, default_retry_decision

    seen: list[int] = []

    def never(failed: FailedAttempt) -> RetryOption | None:
        seen.append(failed.attempt)
        return RetryOption(False)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, json={"detail": "down"})

    client = make_client(handler, retry=default_retry_decision().prepend(never))
    with pytest.raises(ServerError):
        client.list_orgs()
    assert seen == [1]


# -- what cannot heal is not retried; every retry says when it gives up (issue 11, defect 6) --


def _raise_from(cause: BaseException) -> Callable[[httpx.Request], httpx.Response]:
    """A transport failure the way httpx raises it: ConnectError from the ssl/socket error."""

    def fail(request: httpx.Request) -> httpx.Response:
        try:
            raise cause
        except BaseException as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc

    return fail


def test_certificate_mismatch_is_not_retried(make_client: MakeClient, clock: Any) -> None:
    import ssl

    bad_cert = ssl.SSLCertVerificationError(1, "certificate verify failed")
    bad_cert.verify_message = "Hostname mismatch, certificate is not valid for 'x.test'"
    client = make_client(_raise_from(bad_cert))
    with pytest.raises(APIConnectionError) as info:
        client.list_orgs()
    assert client.stats.requests == 1 and clock.sleeps == []
    assert any("not retried: TLS certificate" in note for note in info.value.__notes__)


def test_unknown_host_is_not_retried(make_client: MakeClient, clock: Any) -> None:
    import socket

    nxdomain = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    client = make_client(_raise_from(nxdomain))
    with pytest.raises(APIConnectionError):
        client.list_orgs()
    assert client.stats.requests == 1 and clock.sleeps == []


def test_temporary_dns_failure_is_retried(make_client: MakeClient, clock: Any) -> None:
    import socket

    again = socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
    client = make_client(_flaky(_raise_from(again)))
    assert client.list_orgs() == PAGE["results"]
    assert client.stats.requests == 2


def test_408_is_retried(make_client: MakeClient, clock: Any) -> None:
    client = make_client(_flaky(_status(408, text="Request Timeout")))
    assert client.list_orgs() == PAGE["results"]
    assert client.stats.retries == 1


def test_cannot_heal_decisions() -> None:
    from rc_extract.retry import cannot_heal

    assert cannot_heal(APIStatusError(400, "/x", "")) == "HTTP 400"
    assert cannot_heal(NotFoundError(404, "/x", "")) == "HTTP 404"
    assert cannot_heal(RateLimitError(429, "/x", "")) is None
    assert cannot_heal(APIStatusError(408, "/x", "")) is None
    assert cannot_heal(ServerError(503, "/x", "")) is None
    assert cannot_heal(APITimeoutError("https://h", "/x", "timed out")) is None


def test_every_retry_says_when_it_gives_up(
    make_client: MakeClient, clock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A host that never answers in time: from the first warning on, the give-up time is named."""
    import re

    client = make_client(_raise(httpx.ReadTimeout), deadline=60)
    with (
        caplog.at_level(logging.WARNING, logger="rc_extract.client"),
        pytest.raises(APITimeoutError),
    ):
        client.list_orgs()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings
    pattern = re.compile(r"giving up at \d\d:\d\d:\d\d \(in (\d+) s\)")
    remaining = [int(m.group(1)) for w in warnings if (m := pattern.search(w))]
    assert len(remaining) == len(warnings)  # every warning, the first included
    assert remaining[0] == 60 and remaining == sorted(remaining, reverse=True)
