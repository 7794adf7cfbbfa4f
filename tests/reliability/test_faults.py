"""Scenario 4: faults on 20% of requests (429 with Retry-After, 500/502/503, truncated bodies,
timeouts); the sync completes exactly, and retries never wait past the request deadline."""

from __future__ import annotations

import time

import pytest
from reliability_support import FakeTime, Harness, assert_exact, watermark
from support import fetch_rows

from rc_extract.errors import RateLimitError, ServerError

pytestmark = pytest.mark.reliability

KINDS = ("429", "500", "502", "503", "truncated", "timeout")


def test_sync_completes_through_faults(harness: Harness, target) -> None:
    server = harness.sandbox(
        orders=300,
        seed=23,  # a seed whose fault sequence covers every kind early
        fault_rate=0.2,
        fault_kinds=KINDS,
        retry_after_s=3,
        timeout_s=0.5,
        poison_rate=0.03,
    )
    ft = FakeTime()
    engine = harness.engine(
        server, target, fake_time=ft, page_size=5, batch_orders=100, timeout_s=0.2, deadline_s=60
    )
    report = engine.sync_incremental()
    assert report.status == "success"
    faults = server.stats.snapshot()["faults"]
    assert len(faults) >= 4 and sum(faults.values()) >= 8, (
        f"too few kinds of fault were injected: {faults}"
    )
    assert report.retries >= sum(faults.values()) - 1  # every fault but at most one in-flight
    assert report.throttled >= 1
    # Retry-After is obeyed as given (3s), other waits are the capped backoff; none past the deadline
    assert 3 in ft.sleeps
    assert max(ft.sleeps) <= 60
    # a second, incremental run through the same faults reads the (unchanged) window again
    rng = server.app.state.sandbox.mutation_rng
    for _ in range(10):
        server.store.mutate_random(rng)
    assert engine.sync_incremental().status == "success"
    engine.reconcile()
    assert_exact(target, server)
    assert set(server.stats.snapshot()["faults"]) == set(KINDS)


@pytest.mark.parametrize(
    ("kind", "retry_after", "error"),
    [("429", 4, RateLimitError), ("503", 0, ServerError)],
    ids=["429-loop", "503-loop"],
)
def test_endless_faults_stop_at_the_deadline(
    harness: Harness, sqlite_target, kind: str, retry_after: float, error: type
) -> None:
    """A server that throttles (or fails) forever: the run gives up once another wait would pass
    the deadline, having waited at most the deadline, and writes nothing."""
    server = harness.sandbox(orders=40, seed=3)
    ft = FakeTime()
    engine = harness.engine(server, sqlite_target, fake_time=ft, deadline_s=20)
    assert engine.db is not None  # migrated; every request from now on fails
    server.config.update(fault_rate=1.0, fault_kinds=(kind,), retry_after_s=retry_after)
    with pytest.raises(error) as caught:
        engine.sync_incremental()
    assert 0 < sum(ft.sleeps) <= 20, ft.sleeps
    assert "deadline" in str(caught.value) or any("deadline" in n for n in caught.value.__notes__)
    assert fetch_rows(sqlite_target, "orders") == []
    assert all(watermark(sqlite_target, org) is None for org in server.store.org_pks())


def test_cli_429_loop_ends_within_deadline(harness: Harness, sqlite_target) -> None:
    """End to end with real time: `rc-sync sync` against a server that always answers 429
    with Retry-After 1 exits 1 with a clear message within the 3-second deadline."""
    server = harness.sandbox(orders=40, seed=3)
    harness.migrate(server, sqlite_target)
    server.config.update(fault_rate=1.0, fault_kinds=("429",), retry_after_s=1)
    started = time.monotonic()
    proc = harness.run_cli(["sync"], harness.env(server, sqlite_target, RC_SYNC_DEADLINE="3"))
    elapsed = time.monotonic() - started
    assert proc.returncode == 1, proc.stderr
    assert "throttled" in proc.stderr.lower() or "429" in proc.stderr
    assert elapsed < 3 + 8, f"took {elapsed:.1f}s"  # deadline plus interpreter start-up
