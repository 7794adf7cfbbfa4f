"""Scenarios 2 and 3: timestamp ties across page boundaries; a server without the filters.

2. Most orders share one of two `nested_updated_at` values, the server clamps pages to 7, so
   ties straddle nearly every page boundary (and batch/checkpoint boundary); no order may be
   missed or read twice, also when a run stops halfway and the next starts at the watermark
   with no overlap at all.
3. A server that silently ignores the datetime filters, clamps the page size to 37 and sends
   host-relative `next` links.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from reliability_support import (
    Harness,
    assert_exact,
    assert_watermark_not_ahead,
    watermark,
)

from rc_extract.errors import AuthenticationError

pytestmark = pytest.mark.reliability


def _tie_values(server) -> list:
    org = server.store.org_pks()[0]
    stamps = [
        server.store.get_order(org, pk).nested_updated_at for pk in server.store.order_pks(org)
    ]
    counts: dict = {}
    for s in stamps:
        counts[s] = counts.get(s, 0) + 1
    return sorted((s for s, n in counts.items() if n > 1), key=lambda s: -counts[s])


def test_ties_straddling_pages(harness: Harness, target) -> None:
    server = harness.sandbox(
        orders=160, orgs=1, seed=5, tie_fraction=0.85, tie_values=2, page_cap=7
    )
    ties = _tie_values(server)
    assert ties, "the sandbox made no ties"
    org = server.store.org_pks()[0]
    engine = harness.engine(server, target, page_size=50, batch_orders=14, overlap_s=0)
    report = engine.sync_incremental()
    assert report.status == "success"
    # each order read exactly once (the walk deduplicates; a repair would show in the path)
    assert report.orgs[0].orders_read == server.store.order_count(org)
    assert_exact(target, server)

    # A window that is exactly one tie value: [T, T + 1us) holds every order of the tie.
    tie = ties[0]
    group = sum(
        1
        for pk in server.store.order_pks(org)
        if server.store.get_order(org, pk).nested_updated_at == tie
    )
    assert group > 15
    window = engine.sync_window(tie, tie + timedelta(microseconds=1))
    assert window.orgs[0].orders_read == group
    assert engine.count_window(org, tie, tie + timedelta(microseconds=1)) == group


def test_ties_across_an_interrupted_run(harness: Harness, target) -> None:
    """A run cut off mid-way (credentials die) leaves a watermark inside the tie region; the
    next run with overlap 0 starts exactly there and still misses nothing."""
    server = harness.sandbox(
        orders=160, orgs=1, seed=6, tie_fraction=0.85, tie_values=2, page_cap=7
    )
    org = server.store.org_pks()[0]
    engine = harness.engine(
        server, target, page_size=7, batch_orders=14, overlap_s=0, concurrency=1
    )
    server.config.update(fail_auth_after=20)
    with pytest.raises(AuthenticationError):
        engine.sync_incremental()
    mark = watermark(target, org)
    assert mark is not None, "no batch was committed before the failure"
    assert_watermark_not_ahead(target, server)
    server.config.update(fail_auth_after=None)
    again = harness.engine(server, target, page_size=7, batch_orders=14, overlap_s=0, concurrency=1)
    assert again.sync_incremental().status == "success"
    assert_exact(target, server)


@pytest.mark.parametrize("ordering", [True, False], ids=["ordered", "unordered"])
def test_server_without_filters_clamped_relative(harness: Harness, target, ordering: bool) -> None:
    server = harness.sandbox(
        orders=200, seed=8, filters=False, page_cap=37, absolute_next=False, ordering=ordering
    )
    engine = harness.engine(server, target, page_size=100, batch_orders=40)
    report = engine.sync_incremental()
    assert report.status == "success"
    assert {o.path for o in report.orgs} == {"compact-diff"}
    assert_exact(target, server)
    # changes, then an incremental: only the changed orders are in the window
    rng = server.app.state.sandbox.mutation_rng
    for _ in range(12):
        server.store.mutate_random(rng)
    report = engine.sync_incremental()
    assert report.status == "success"
    engine.reconcile()
    assert_exact(target, server)
