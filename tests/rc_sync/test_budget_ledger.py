"""The warehouse ledger: one sliding window and one 429 pause shared by every process of an App."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from rc_extract.budget import BULK_SHARE, Rate
from rc_sync.budget import LedgerBudget, budget_key
from warehouse import budget as ledger
from warehouse import migrate
from warehouse.db import make_engine

KEY = budget_key("http://127.0.0.1:1", "default")


@pytest.fixture
def engines(target: Any) -> Any:
    """Two engines on one migrated warehouse: two processes' connections."""
    first = make_engine(target.url, target.schema)
    migrate.upgrade(first)
    second = make_engine(target.url, target.schema)
    yield first, second
    first.dispose()
    second.dispose()


def test_key_hashes_host_and_app_never_the_token() -> None:
    assert budget_key("https://www.readycloud.com/", "default") == budget_key(
        "https://WWW.readycloud.com", "default"
    )
    assert budget_key("https://www.readycloud.com", "a") != budget_key(
        "https://www.readycloud.com", "b"
    )
    assert len(KEY) == 64


def test_two_processes_share_one_window(engines: Any) -> None:
    rate = Rate(6, 1.5)
    budgets = [LedgerBudget(engine, KEY, rate) for engine in engines]
    stamps: list[float] = []
    lock = threading.Lock()

    def work(budget: LedgerBudget) -> None:
        for _ in range(9):
            budget.acquire("list", "bulk")
            with lock:
                stamps.append(time.monotonic())

    threads = [threading.Thread(target=work, args=(b,)) for b in budgets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    stamps.sort()
    assert len(stamps) == 18
    for i in range(len(stamps) - rate.limit):  # never more than 6 in any 1.5 s
        assert stamps[i + rate.limit] - stamps[i] >= rate.period_s - 0.05
    used = ledger.usage(engines[0], KEY, {"hour": 3600})
    assert used["hour"] == {"list": 18}


def test_a_429_pauses_the_other_process(engines: Any) -> None:
    rate = Rate(100, 1.0)
    one, other = (LedgerBudget(engine, KEY, rate, rand=lambda: 0.0) for engine in engines)
    assert one.throttled(None) == pytest.approx(1.0, abs=0.05)
    started = time.monotonic()
    other.acquire("detail", "refresh")
    assert time.monotonic() - started >= 0.9
    state = ledger.state(engines[0], KEY)
    assert state is not None and state.throttled_total == 1


def test_refresh_gets_its_reserved_share_next_to_bulk_work(engines: Any) -> None:
    rate = Rate(10, 2.0)
    bulk, refresh = (LedgerBudget(engine, KEY, rate) for engine in engines)
    for _ in range(rate.limit):  # a backfill has used the whole window
        bulk.acquire("list", "bulk")
    stop = threading.Event()
    granted: list[tuple[str, float]] = []

    def backfill() -> None:
        while not stop.is_set():
            bulk.acquire("list", "bulk")
            granted.append(("bulk", time.monotonic()))

    thread = threading.Thread(target=backfill)
    thread.start()
    try:
        waits = [refresh.acquire("list", "refresh") for _ in range(4)]
    finally:
        stop.set()
        thread.join(30)
    # The first refresh request waits for the window (at most one period); the next ones
    # find their reserved share instead of queueing behind the backfill.
    assert waits[0] <= rate.period_s + 0.3
    assert sum(waits[1:]) <= rate.period_s + 0.5
    assert rate.cap("bulk", refresh_waiting=True) == int(rate.limit * BULK_SHARE)


def test_nothing_is_held_between_requests(engines: Any) -> None:
    """A process that stops (or dies) after a grant blocks nobody: only rows remain."""
    rate = Rate(3, 60.0)
    dead = LedgerBudget(engines[0], KEY, rate)
    dead.acquire("list", "bulk")
    engines[0].dispose()  # its connections are gone, like a killed process's
    alive = LedgerBudget(engines[1], KEY, rate)
    started = time.monotonic()
    alive.acquire("list", "refresh")
    alive.acquire("list", "refresh")
    assert time.monotonic() - started < 1.0
