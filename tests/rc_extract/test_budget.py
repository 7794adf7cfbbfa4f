"""The request budget: rate strings, the sliding window, the reserved share, the App-wide pause."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from rc_extract.budget import (
    BULK_SHARE,
    LocalBudget,
    Rate,
    RateError,
    parse_rate,
    priority,
    purpose,
    throttle_pause,
)
from rc_extract.client import ReadyCloudClient
from rc_extract.errors import RateLimitError

MakeClient = Callable[..., ReadyCloudClient]


@pytest.mark.parametrize(
    ("text", "limit", "period"),
    [
        ("30/min", 30, 60.0),
        ("30/m", 30, 60.0),
        ("5/s", 5, 1.0),
        ("5/sec", 5, 1.0),
        ("1000/h", 1000, 3600.0),
        ("1000/hour", 1000, 3600.0),
        ("43200/d", 43200, 86400.0),
        ("20/4s", 20, 4.0),
        ("100/10min", 100, 600.0),
        (" 7 / minutes ", 7, 60.0),
    ],
)
def test_parse_rate(text: str, limit: int, period: float) -> None:
    assert parse_rate(text) == Rate(limit, period)


@pytest.mark.parametrize("text", ["off", "OFF", "none", "0"])
def test_parse_rate_off(text: str) -> None:
    assert parse_rate(text) is None


@pytest.mark.parametrize("text", ["30", "30/fortnight", "x/min", "0/min", "30/0s", "30/ms"])
def test_parse_rate_refuses_nonsense(text: str) -> None:
    with pytest.raises(RateError, match="READYCLOUD_RATE_LIMIT"):
        parse_rate(text)


def test_rate_str_round_trips() -> None:
    for text in ("30/min", "5/s", "1000/h", "10/d", "20/4s"):
        assert str(parse_rate(text)) == text


def test_sliding_window_allows_a_burst_then_n_per_period(clock: Any) -> None:
    budget = LocalBudget(Rate(3, 10.0), clock=clock, sleep=clock.sleep, rand=lambda: 0.0)
    started = clock.now
    times = []
    for _ in range(7):
        budget.acquire("list", "bulk")
        times.append(clock.now - started)
    assert times[:3] == [0, 0, 0]  # a burst of N goes at once
    # then each waits for a slot to free (the client's window is 5 % longer than the server's:
    # a request reaches the server a moment after it was granted)
    assert times[3] == pytest.approx(10.5, abs=0.01)
    assert times[6] == pytest.approx(21.0, abs=0.01)
    # never more than 3 in any 10-second window
    for i in range(len(times) - 3):
        assert times[i + 3] - times[i] >= 10.0 - 1e-6


def test_refresh_keeps_a_reserved_share(clock: Any) -> None:
    rate = Rate(10, 10.0)
    budget = LocalBudget(rate, clock=clock, sleep=clock.sleep, rand=lambda: 0.0)
    for _ in range(10):  # bulk work alone may use the whole window
        budget.acquire("list", "bulk")
    clock.now += rate.guarded_period_s
    waited = budget.acquire("list", "refresh")  # a refresh arrives: it is now waiting
    assert waited == 0
    share = int(rate.limit * BULK_SHARE)
    for _ in range(share):  # bulk work goes on at once up to its share of the window ...
        assert budget.acquire("list", "bulk") == 0
    assert budget.acquire("list", "bulk") > 0  # ... and then waits, although 1 slot is free
    clock.now += 0.001
    # the refresh found its reserved slot: it never waits for the bulk work
    assert budget.acquire("detail", "refresh") == 0


def test_throttle_pauses_everyone_and_doubles(clock: Any) -> None:
    budget = LocalBudget(None, clock=clock, sleep=clock.sleep, rand=lambda: 0.0)
    assert budget.throttled(None) == pytest.approx(1.0)
    assert budget.throttled(None) == pytest.approx(1.0)  # already paused: not doubled again
    clock.now += 1.0
    assert budget.throttled(None) == pytest.approx(2.0)  # consecutive 429: doubles
    clock.now += 2.0
    assert budget.throttled(30.0) == pytest.approx(30.0)  # Retry-After above the floor wins
    waited = budget.acquire("list", "refresh")
    assert waited == pytest.approx(30.0, abs=0.05)
    clock.now += 10_000
    assert budget.throttled(0.0) == pytest.approx(1.0)  # a quiet spell resets; 0 gets the floor


def test_throttle_pause_is_capped_and_jittered() -> None:
    assert throttle_pause(1, None, lambda: 0.0) == 1.0
    assert throttle_pause(8, None, lambda: 0.0) == 128.0
    assert throttle_pause(20, None, lambda: 0.0) == 128.0
    assert throttle_pause(1, None, lambda: 1.0) == pytest.approx(1.25)
    assert throttle_pause(3, 0, lambda: 0.0) == 4.0


def test_budget_is_shared_safely_between_threads(clock: Any) -> None:
    budget = LocalBudget(Rate(5, 1.0), clock=clock, sleep=clock.sleep, rand=lambda: 0.0)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: budget.acquire("list", "bulk"), range(40)))
    assert sum(budget.granted.values()) == 40


def test_waits_are_announced(clock: Any) -> None:
    budget = LocalBudget(Rate(1, 5.0), clock=clock, sleep=clock.sleep, rand=lambda: 0.0)
    heard: list[tuple[float, str]] = []
    budget.listeners.append(lambda wait, why: heard.append((wait, why)))
    budget.acquire("list", "bulk")
    budget.acquire("list", "bulk")
    assert heard and heard[0][0] == pytest.approx(5.25)
    assert "1/5s" in heard[0][1]


def _empty(_: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"count": 0, "next": None, "results": []})


def test_client_draws_from_the_budget(make_client: MakeClient, clock: Any) -> None:
    budget = LocalBudget(Rate(4, 2.0), clock=clock, sleep=clock.sleep, rand=lambda: 0.0)
    client = make_client(_empty, budget=budget)
    for _ in range(9):
        client.list_orgs()
    assert clock.now - 1000.0 == pytest.approx(2 * 2.1, abs=0.2)
    assert budget.granted == {"probe": 9}


def test_client_without_budget_never_sleeps(make_client: MakeClient, clock: Any) -> None:
    client = make_client(_empty)
    for _ in range(9):
        client.list_orgs()
    assert clock.sleeps == []


def test_purpose_and_retry_are_counted(make_client: MakeClient, clock: Any) -> None:
    answers = iter([httpx.Response(503), _empty(httpx.Request("GET", "/"))])
    budget = LocalBudget(None, clock=clock, sleep=clock.sleep, rand=lambda: 0.0)
    client = make_client(lambda r: next(answers), budget=budget)
    with purpose("check"):
        client.count_orders("7")
    assert budget.granted == {"check": 1, "retry": 1}
    assert client.stats.snapshot()["by_kind"] == {"check": 1, "retry": 1}


def test_waiting_for_another_process_pause_is_not_charged_to_the_deadline(
    make_client: MakeClient, clock: Any
) -> None:
    budget = LocalBudget(None, clock=clock, sleep=clock.sleep, rand=lambda: 0.0)
    budget.throttled(60.0)  # another request of the App got a 429 asking for 60 s
    client = make_client(_empty, budget=budget, deadline=20.0)
    with priority("refresh"):
        assert client.list_orgs() == []  # waited 60 s for the budget, deadline 20 s: fine
    assert clock.now - 1000.0 == pytest.approx(60.0, abs=0.5)


def test_own_429s_pause_the_app_and_count_against_the_deadline(
    make_client: MakeClient, clock: Any
) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls <= 3:  # pauses of 1, 2, 4 s: within the 20 s deadline
            return httpx.Response(429, json={"detail": "Request was throttled."})
        return _empty(request)

    budget = LocalBudget(None, clock=clock, sleep=clock.sleep, rand=lambda: 0.0)
    client = make_client(handler, budget=budget, deadline=20.0)
    assert client.list_orgs() == []
    assert calls == 4
    assert clock.now - 1000.0 == pytest.approx(7.0, abs=0.5)
    endless = make_client(lambda r: httpx.Response(429), budget=budget, deadline=20.0)
    with pytest.raises(RateLimitError, match="deadline"):
        endless.list_orgs()  # 8, 16 s... would pass the deadline: gives up


def test_a_request_throttled_without_end_gives_up(make_client: MakeClient, clock: Any) -> None:
    budget = LocalBudget(None, clock=clock, sleep=clock.sleep, rand=lambda: 0.0)
    client = make_client(lambda r: httpx.Response(429), budget=budget, deadline=1e9)
    with pytest.raises(RateLimitError, match="READYCLOUD_RATE_LIMIT"):
        client.list_orgs()
