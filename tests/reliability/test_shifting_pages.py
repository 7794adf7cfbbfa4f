"""Scenario 1: pages shifting under the walk (updates, creates, deletes, removed boxes and items).

Mutations hit the sandbox every few list requests while a full and then an incremental sync
run; one more quiet sync (plus `reconcile`, which is how deletions reach the warehouse) must
leave the warehouse equal to the source, column by column. A single completed sync already
guarantees that every order that did not change while it ran is exactly as at the source.
"""

from __future__ import annotations

from datetime import datetime

import pytest
from reliability_support import (
    Harness,
    assert_exact,
    live_order_keys,
    source_order_keys,
)
from support import diff_table, fetch_rows
from support.expected import expected_rows

from rc_common.timefmt import utc_now

pytestmark = pytest.mark.reliability


def _unchanged_since(server, started: datetime) -> dict[str, list[dict]]:
    """Expected rows of the orders whose last change is before `started`."""
    return expected_rows(server.store, until=started)


def assert_unchanged_orders_exact(target, server, started: datetime) -> None:
    """What one completed sync guarantees: orders not changed during it are exact."""
    expected = _unchanged_since(server, started)
    keys = {(r["org_pk"], r["order_pk"]) for r in expected["orders"]}
    problems: list[str] = []
    for table, rows in expected.items():
        actual = [r for r in fetch_rows(target, table) if (r["org_pk"], r["order_pk"]) in keys]
        problems += diff_table(actual, rows, table)
    assert not problems, "unchanged orders differ after one sync:\n  " + "\n  ".join(problems[:20])


def _mutations_seen(server) -> int:
    return int(server.stats.snapshot()["mutations"])


@pytest.mark.parametrize("orders", [300])
def test_pages_shift_during_full_and_incremental(harness: Harness, target, orders: int) -> None:
    server = harness.sandbox(orders=orders, seed=11, tie_fraction=0.2, poison_rate=0.03)
    engine = harness.engine(server, target, page_size=20, batch_orders=30)

    # 1. A full sync while the source changes every 3 list requests.
    server.config.update(mutate_every=3)
    started = utc_now()
    report = engine.sync_incremental()
    assert report.status == "success"
    assert _mutations_seen(server) >= 5, "the scenario did not mutate during the walk"
    assert_unchanged_orders_exact(target, server, started)

    # 2. More changes between runs (including removed boxes and items), then an incremental
    #    sync that is itself disturbed.
    store = server.store
    for _ in range(15):
        store.mutate_random(server.app.state.sandbox.mutation_rng)
    org = store.org_pks()[0]
    pk = next(p for p in store.order_pks(org) if store.get_order(org, p).boxes)
    order = store.get_order(org, pk)
    box = order.boxes[0]
    if box.items:
        store.remove_item(org, pk, box.pk, box.items[0].pk)
    store.remove_box(org, pk, box.pk)
    server.config.update(mutate_every=1)  # the incremental window is only a few pages
    before = _mutations_seen(server)
    started = utc_now()
    report = engine.sync_incremental()
    assert report.status == "success"
    assert _mutations_seen(server) > before
    assert_unchanged_orders_exact(target, server, started)

    # 3. Quiet: one more sync and a reconcile give the source exactly.
    server.config.update(mutate_every=0)
    assert engine.sync_incremental().status == "success"
    gone = live_order_keys(target) - source_order_keys(server)
    # Before reconcile, the only extra orders are the ones deleted at the source.
    assert all(store.get_order(o, p) is None for o, p in gone)
    engine.reconcile()
    assert_exact(target, server)
