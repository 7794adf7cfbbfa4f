"""Hardening: a sync that read orders before they were deleted, and commits after reconcile
marked them, must not bring them back; reconcile and live syncs of one org take turns (issue
15, defect 2)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from reliability_support import Harness, assert_exact, live_order_keys

from rc_common.timefmt import format_api_datetime, parse_api_datetime, utc_now
from rc_extract.client import ReadyCloudClient
from warehouse.load import Loader
from warehouse.locks import LockTimeout, org_run_lock
from warehouse.normalize import normalize_orders

pytestmark = pytest.mark.reliability


def _read_docs(server, org: str, pks: list[str]) -> list[dict]:
    """Expanded documents of these orders as a sync reads them (before they are deleted)."""
    with ReadyCloudClient(server.base_url, server.token) as client:
        return [doc for _, doc in client.iter_order_details(org, pks) if doc is not None]


def test_a_racing_sync_does_not_undo_reconciles_deletions(harness: Harness, target) -> None:
    server = harness.sandbox(orders=200, seed=31)
    engine = harness.engine(server, target)
    assert engine.sync_incremental().status == "success"
    org = server.store.org_pks()[0]
    doomed = server.store.order_pks(org)[:20]
    stale = _read_docs(server, org, doomed)  # a long sync has these in hand ...
    for pk in doomed:
        server.store.delete_order(org, pk)  # ... when they are deleted at the source
    report = engine.reconcile()
    assert report.orgs[0].orders_deleted + report.orgs[1].orders_deleted == 20
    # the racing sync commits what it read before the deletion
    Loader(engine.db).load_batch(org, normalize_orders(org, stale, utc_now()))
    live = live_order_keys(target)
    undone = [pk for pk in doomed if (org, pk) in live]
    assert not undone, f"{len(undone)} deletions undone by a racing sync"
    assert_exact(target, server)


def test_only_a_newer_version_or_a_listing_clears_a_deletion_mark(harness: Harness, target) -> None:
    server = harness.sandbox(orders=60, seed=32)
    engine = harness.engine(server, target)
    engine.sync_incremental()
    org = server.store.org_pks()[0]
    pk = server.store.order_pks(org)[0]
    (doc,) = _read_docs(server, org, [pk])
    server.store.delete_order(org, pk)
    engine.reconcile()
    assert (org, pk) not in live_order_keys(target)
    # a version made after the deletion was seen means the order is back
    newer = dict(doc)
    stamp = parse_api_datetime(doc["nested_updated_at"])
    newer["nested_updated_at"] = format_api_datetime(max(stamp, utc_now()) + timedelta(hours=1))
    Loader(engine.db).load_batch(org, normalize_orders(org, [newer], utc_now()))
    assert (org, pk) in live_order_keys(target)


def test_reconcile_waits_for_a_live_sync_of_the_same_org(harness: Harness, target) -> None:
    server = harness.sandbox(orders=40, seed=33)
    engine = harness.engine(server, target, lock_timeout_s=0.5)
    engine.sync_incremental()
    org = server.store.org_pks()[0]
    with org_run_lock(engine.db, org, timeout_s=0), pytest.raises(LockTimeout, match=org):
        engine.reconcile()
