"""Webhooks end to end against the sandbox: register, mutate, the warehouse follows without polling."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from support import assert_no_duplicate_keys, assert_warehouse_matches
from support.expected import expected_rows
from webhook_support import (
    Hooked,
    event_rows,
    hooked_setup,
    mutate_updates,
    percentile,
    wait_applied,
)

from rc_sync.engine import SyncEngine


def test_thousand_changes_arrive_without_a_list_request(hooked: Hooked) -> None:
    server = hooked.server
    before = server.stats.snapshot()
    # updates, creations, deletions, removed boxes, new items, moved addresses
    import random

    rng = random.Random(3)
    for _ in range(1000):
        server.store.mutate_random(rng)
    wait_applied(hooked)
    after = server.stats.snapshot()
    spent = {k: after[k] - before[k] for k in ("list", "compact", "detail", "requests")}
    assert spent == {"list": 0, "compact": 0, "detail": 0, "requests": 0}, spent
    assert_warehouse_matches(hooked.target, expected_rows(server.store))
    assert_no_duplicate_keys(hooked.target)
    rows = event_rows(hooked.target)
    assert len(rows) == sum(1 for r in server.hub.log if r.fate == "delivered")
    assert all(r["applied_at"] is not None for r in rows)
    lags = [(r["applied_at"] - r["received_at"]).total_seconds() for r in rows]
    print(
        f"\n[{hooked.target.dialect}] 1000 changes: receive-to-applied p50 "
        f"{percentile(lags, 0.5) * 1000:.0f} ms, p95 {percentile(lags, 0.95) * 1000:.0f} ms; "
        f"requests spent: {spent['requests']}"
    )


def test_deletions_set_and_newer_versions_clear_deleted_at(hooked: Hooked) -> None:
    store = hooked.server.store
    org = store.org_pks()[0]
    pk = store.order_pks(org)[0]
    store.delete_order(org, pk)
    wait_applied(hooked)
    from support import fetch_rows

    rows = {r["order_pk"]: r for r in fetch_rows(hooked.target, "orders", live_only=False)}
    assert rows[pk]["deleted_at"] is not None
    assert pk not in {r["order_pk"] for r in fetch_rows(hooked.target, "orders")}


def test_lost_duplicated_reordered_deliveries_are_repaired_by_the_next_poll(target: Any) -> None:
    hooked = hooked_setup(
        target,
        webhook_drop_rate=0.10,
        webhook_duplicate_rate=0.05,
        webhook_reorder_rate=0.05,
    )
    try:
        server = hooked.server
        mutate_updates(server, 600)
        wait_applied(hooked)
        log = server.hub.log
        fates = Counter(r.fate for r in log)
        assert fates["dropped"] > 0 and any(r.copies == 2 for r in log)
        last: dict[tuple[str, str], Any] = {}
        for record in sorted(log, key=lambda r: r.seq):
            last[(record.org_pk, record.order_pk)] = record
        expected_misses = sum(1 for r in last.values() if r.fate != "delivered")
        expected_hits = len(last) - expected_misses
        with SyncEngine(hooked.settings) as engine:
            report = engine.sync_incremental()
        assert_warehouse_matches(target, expected_rows(server.store))
        assert_no_duplicate_keys(target)
        hits = sum(o.webhook_hits for o in report.orgs)
        misses = sum(o.webhook_misses for o in report.orgs)
        assert (hits, misses) == (expected_hits, expected_misses)
        # a second poll finds nothing new to judge
        with SyncEngine(hooked.settings) as engine:
            again = engine.sync_incremental()
        assert sum(o.webhook_hits + o.webhook_misses for o in again.orgs) == 0
        from datetime import UTC, datetime, timedelta

        from rc_sync.webhooks import service

        status = service.status(hooked.settings, timedelta(days=1))
        total_hits = sum(s.hits for s in status.values())
        total_misses = sum(s.misses for s in status.values())
        assert (total_hits, total_misses) == (expected_hits, expected_misses)
        rate = total_misses / (total_hits + total_misses)
        print(f"\n[{target.dialect}] miss rate {rate:.1%} ({dict(fates)}) at {datetime.now(UTC)}")
    finally:
        hooked.shutdown()
        hooked.server.stop()


@pytest.mark.parametrize("target", ["sqlite"], indirect=True)
def test_events_never_move_the_watermark(hooked: Hooked) -> None:
    from warehouse import state as wh_state
    from warehouse.db import make_engine

    engine = make_engine(hooked.target.url, hooked.target.schema)
    try:
        marks = {org: wh_state.get_watermark(engine, org) for org in hooked.server.store.org_pks()}
        mutate_updates(hooked.server, 50)
        wait_applied(hooked)
        after = {org: wh_state.get_watermark(engine, org) for org in hooked.server.store.org_pks()}
    finally:
        engine.dispose()
    assert marks == after


@pytest.mark.parametrize("target", ["sqlite"], indirect=True)
def test_a_failing_verdict_never_fails_the_sync(
    hooked: Hooked, monkeypatch: pytest.MonkeyPatch
) -> None:
    from warehouse import webhooks as wh

    def broken(*args: Any, **kwargs: Any) -> tuple[int, int]:
        raise RuntimeError("bookkeeping down")

    monkeypatch.setattr(wh, "record_poll", broken)
    mutate_updates(hooked.server, 5)
    with SyncEngine(hooked.settings) as engine:
        report = engine.sync_incremental()
    assert report.status == "success"
    assert_warehouse_matches(hooked.target, expected_rows(hooked.server.store))
