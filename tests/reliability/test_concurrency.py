"""Scenario 6: two syncs of the same org at once, and a backfill beside a refresh.

No corruption (exact result, no duplicate keys), no lost update (no order's stored
`nested_updated_at` ever goes backwards, watched while the runs overlap), and the second live
run either waits for the first or exits with a clear message.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from reliability_support import Harness, assert_exact, watermark
from support import assert_no_duplicate_keys, fetch_rows

from rc_sync.report import RunReport
from warehouse.locks import org_run_lock

pytestmark = pytest.mark.reliability


def _in_threads(*calls: Any) -> list[Any]:
    """Run the callables at once; their results (or the exceptions they raised)."""
    results: list[Any] = [None] * len(calls)
    barrier = threading.Barrier(len(calls))

    def run(i: int, call: Any) -> None:
        barrier.wait()
        try:
            results[i] = call()
        except BaseException as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


class RegressionWatch:
    """Polls the warehouse while runs overlap; records any order whose state went backwards."""

    def __init__(self, target: Any) -> None:
        self.target = target
        self.latest: dict[tuple[str, str], datetime] = {}
        self.regressions: list[str] = []
        self.polls = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll()
            self._stop.wait(0.05)

    def poll(self) -> None:
        try:
            rows = fetch_rows(self.target, "orders", live_only=False)
        except Exception:  # tables not created yet
            return
        self.polls += 1
        for row in rows:
            key = (row["org_pk"], row["order_pk"])
            stamp = row["nested_updated_at"]
            seen = self.latest.get(key)
            if seen is not None and stamp is not None and stamp < seen:
                self.regressions.append(f"{key}: {seen.isoformat()} -> {stamp.isoformat()}")
            if stamp is not None and (seen is None or stamp > seen):
                self.latest[key] = stamp

    def __enter__(self) -> RegressionWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self.poll()


def test_two_live_syncs_at_once_wait_for_each_other(harness: Harness, target) -> None:
    server = harness.sandbox(orders=240, seed=41, latency_ms=2, mutate_every=4)
    first = harness.engine(server, target, lock_timeout_s=60, batch_orders=40)
    second = harness.engine(server, target, lock_timeout_s=60, batch_orders=40)
    first.db, second.db  # noqa: B018 - migrate before the race
    with RegressionWatch(target) as watch:
        results = _in_threads(first.sync_incremental, second.sync_incremental)
    assert all(isinstance(r, RunReport) and r.status == "success" for r in results), results
    assert not watch.regressions, watch.regressions[:5]
    assert watch.polls > 1
    assert_no_duplicate_keys(target)
    server.config.update(mutate_every=0)
    first.sync_incremental()
    first.reconcile()
    assert_exact(target, server)


def test_second_live_sync_exits_with_a_clear_message(harness: Harness, target) -> None:
    """With RC_SYNC_LOCK_TIMEOUT=0 the loser does not wait: exit 1, says another run is on."""
    server = harness.sandbox(orders=40, seed=42)
    harness.migrate(server, target)
    org = server.store.org_pks()[0]
    env = harness.env(server, target, RC_SYNC_LOCK_TIMEOUT="0", READYCLOUD_ORGS=org)
    holder = harness.engine(server, target)
    with org_run_lock(holder.db, org, timeout_s=0):
        proc = harness.run_cli(["sync"], env)
    assert proc.returncode == 1, proc.stderr
    message = " ".join(proc.stderr.split())
    assert f"another rc-sync run for org {org} is in progress" in message
    assert "Traceback" not in proc.stderr
    assert fetch_rows(target, "orders") == []
    # once the lock is free the same command works
    assert harness.run_cli(["sync"], env).returncode == 0


def test_backfill_beside_refresh(harness: Harness, target) -> None:
    """A backfill of all history runs beside a full refresh while the source changes: the
    backfill never regresses what the refresh wrote and never moves the watermark."""
    server = harness.sandbox(orders=300, seed=43, latency_ms=2)
    live = harness.engine(server, target, batch_orders=30, page_size=20)
    back = harness.engine(server, target, batch_orders=30, page_size=20)
    assert live.sync_incremental().status == "success"
    marks = {org: watermark(target, org) for org in server.store.org_pks()}
    # a backfill alone never moves the watermark
    assert back.sync_window(datetime(2020, 1, 1, tzinfo=UTC)).status == "success"
    assert {org: watermark(target, org) for org in server.store.org_pks()} == marks

    server.config.update(mutate_every=2)
    with RegressionWatch(target) as watch:
        results = _in_threads(
            live.sync_full_refresh,
            lambda: back.sync_window(datetime(2020, 1, 1, tzinfo=UTC)),
        )
    assert all(isinstance(r, RunReport) and r.status == "success" for r in results), results
    assert not watch.regressions, watch.regressions[:5]
    assert sum(r.total("orders_skipped_older") for r in results) >= 0
    for org, before in marks.items():
        after = watermark(target, org)
        assert before is not None and after is not None and after >= before
    assert_no_duplicate_keys(target)
    server.config.update(mutate_every=0)
    live.sync_incremental()
    live.reconcile()
    assert_exact(target, server)
