"""The client-side rate cap: a token bucket shared by every thread of a client."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from rc_extract.client import ReadyCloudClient
from rc_extract.ratelimit import TokenBucket

MakeClient = Callable[..., ReadyCloudClient]


def test_bucket_spaces_requests(clock: Any) -> None:
    bucket = TokenBucket(5, clock=clock, sleep=clock.sleep)
    for _ in range(11):
        bucket.acquire()
    assert sum(clock.sleeps) == pytest.approx(2.0)
    assert all(s == pytest.approx(0.2) for s in clock.sleeps)


def test_bucket_refills_while_idle(clock: Any) -> None:
    bucket = TokenBucket(2, capacity=3, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        assert bucket.acquire() == 0
    clock.now += 10  # idle: refills to capacity, not beyond
    for _ in range(3):
        assert bucket.acquire() == 0
    assert bucket.acquire() == pytest.approx(0.5)


def test_bucket_is_shared_safely_between_threads(clock: Any) -> None:
    bucket = TokenBucket(10, clock=clock, sleep=clock.sleep)
    with ThreadPoolExecutor(8) as pool:
        waits = list(pool.map(lambda _: bucket.reserve(), range(50)))
    assert sorted(round(w, 6) for w in waits) == [round(k * 0.1, 6) for k in range(50)]


def test_bucket_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        TokenBucket(0)
    with pytest.raises(ValueError):
        TokenBucket(1, capacity=0.5)


def test_client_rate_cap(make_client: MakeClient, clock: Any) -> None:
    page: dict[str, Any] = {"count": 0, "next": None, "results": []}
    client = make_client(lambda r: httpx.Response(200, json=page), max_rps=4)
    for _ in range(9):
        client.list_orgs()
    assert sum(clock.sleeps) == pytest.approx(2.0)


def test_client_without_cap_never_sleeps(make_client: MakeClient, clock: Any) -> None:
    page: dict[str, Any] = {"count": 0, "next": None, "results": []}
    client = make_client(lambda r: httpx.Response(200, json=page))
    for _ in range(9):
        client.list_orgs()
    assert clock.sleeps == []
