"""The sync engine against the sandbox, on SQLite and PostgreSQL."""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from support import (
    assert_no_duplicate_keys,
    assert_warehouse_matches,
    fetch_rows,
    make_settings,
    warehouse_engine,
)
from support.expected import expected_issues, expected_rows

from rc_common.timefmt import day_bounds
from rc_extract.errors import AuthenticationError
from rc_sandbox import SandboxServer
from rc_sync.engine import SyncEngine
from rc_sync.errors import RunFailed
from warehouse import state


def _snapshot(target, table: str) -> dict:
    """Rows keyed by primary key, without synced_at (the one column a re-sync may touch)."""
    rows = fetch_rows(target, table, live_only=False)
    keys = {"orders": 2, "boxes": 3, "items": 4, "addresses": 3}[table]
    out = {}
    for row in rows:
        row = {k: v for k, v in row.items() if k not in {"synced_at"}}
        out[tuple(list(row.values())[:keys])] = row
    return out


def test_full_sync_equals_the_source(sandbox: SandboxServer, target) -> None:
    """A first sync is full and leaves every table equal to the source, column by column."""
    with SyncEngine(make_settings(sandbox, target), auto_migrate=True) as engine:
        report = engine.sync_incremental()
    assert report.status == "success"
    assert {o.mode for o in report.orgs} == {"full (first run)"}
    assert report.total("orders_read") == 300
    assert report.total("orders_new") == 300
    assert all(o.watermark_after is not None for o in report.orgs)
    assert_warehouse_matches(target, expected_rows(sandbox.store))
    assert_no_duplicate_keys(target)


def test_sync_twice_changes_nothing(sandbox: SandboxServer, target) -> None:
    """A second sync with no source changes writes no row (only synced_at may move)."""
    settings = make_settings(sandbox, target)
    with SyncEngine(settings, auto_migrate=True) as engine:
        engine.sync_incremental()
    before = {t: _snapshot(target, t) for t in ("orders", "boxes", "items", "addresses")}
    with SyncEngine(settings, auto_migrate=True) as engine:
        second = engine.sync_incremental()
        full = engine.sync_full_refresh()
    for report in (second, full):
        assert report.total("orders_new") == 0
        assert report.total("orders_updated") == 0
        for table in ("orders", "boxes", "items", "addresses"):
            counts = report.table_total(table)
            assert (counts.inserted, counts.updated, counts.deleted) == (0, 0, 0), table
    after = {t: _snapshot(target, t) for t in ("orders", "boxes", "items", "addresses")}
    assert after == before
    assert full.total("orders_unchanged") == 300
    assert_no_duplicate_keys(target)


def test_mutations_are_picked_up_incrementally(sandbox: SandboxServer, target) -> None:
    """Changed fields, quantities, removed boxes, added items, addresses and new orders arrive."""
    settings = make_settings(sandbox, target)
    store = sandbox.store
    with SyncEngine(settings, auto_migrate=True) as engine:
        first = engine.sync_incremental()
    org = store.org_pks()[0]
    pks = store.order_pks(org)
    store.update_order(org, pks[0], message="changed by the test ✓")
    order = store.get_order(org, pks[1])
    box = order.boxes[0]
    store.set_item_quantity(org, pks[1], box.pk, box.items[0].pk, 99)
    # an order with two or more boxes loses one
    multi = next(pk for pk in pks[2:] if len(store.get_order(org, pk).boxes) > 1)
    removed_box = store.remove_box(org, multi)
    store.add_item(org, pks[3])
    store.change_address(org, pks[4], role="ship_to", city="Zürich")
    new_pk = store.create_order(org)

    with SyncEngine(settings, auto_migrate=True) as engine:
        second = engine.sync_incremental()
    assert_warehouse_matches(target, expected_rows(store))
    assert_no_duplicate_keys(target)
    rep = next(o for o in second.orgs if o.org_pk == org)
    assert rep.mode == "incremental"
    assert rep.orders_new == 1 and rep.orders_updated == 5
    assert second.requests < first.requests / 2
    boxes = {(r["order_pk"], r["box_pk"]) for r in fetch_rows(target, "boxes")}
    assert (multi, removed_box) not in boxes
    assert new_pk in {r["order_pk"] for r in fetch_rows(target, "orders")}


def test_watermark_only_moves_forward_and_backfill_leaves_it(
    sandbox: SandboxServer, target
) -> None:
    """A backfill window re-reads just that window and never moves the live watermark."""
    settings = make_settings(sandbox, target)
    with SyncEngine(settings, auto_migrate=True) as engine:
        engine.sync_incremental()
        marks = {o.org_pk: o.watermark_after for o in engine.sync_incremental().orgs}
    # Damage two warehouse rows: one inside the backfill window, one outside it.
    rows = sorted(fetch_rows(target, "orders"), key=lambda r: r["nested_updated_at"])
    inside, outside = rows[len(rows) // 2], rows[5]
    since = inside["nested_updated_at"] - timedelta(hours=1)
    until = inside["nested_updated_at"] + timedelta(hours=1)
    assert not since <= outside["nested_updated_at"] < until
    engine_db = warehouse_engine(target)
    with engine_db.begin() as conn:
        for row in (inside, outside):
            conn.execute(
                sa.text(
                    "UPDATE orders SET message = 'damaged', content_hash = 'x' "
                    "WHERE org_pk = :o AND order_pk = :p"
                ),
                {"o": row["org_pk"], "p": row["order_pk"]},
            )
    engine_db.dispose()
    with SyncEngine(settings, auto_migrate=True) as engine:
        report = engine.sync_window(since, until)
    assert {o.org_pk: o.watermark_after for o in report.orgs} == marks
    fixed = {(r["org_pk"], r["order_pk"]): r["message"] for r in fetch_rows(target, "orders")}
    assert fixed[(inside["org_pk"], inside["order_pk"])] != "damaged"
    assert fixed[(outside["org_pk"], outside["order_pk"])] == "damaged"
    assert report.total("orders_read") < 300


def test_reconcile_marks_deleted_and_restores(sandbox: SandboxServer, target) -> None:
    """Orders gone at the source get deleted_at; a wrongly marked order is restored."""
    settings = make_settings(sandbox, target)
    store = sandbox.store
    with SyncEngine(settings, auto_migrate=True) as engine:
        engine.sync_incremental()
    org = store.org_pks()[1]
    doomed = store.order_pks(org)[:3]
    for pk in doomed:
        store.delete_order(org, pk)
    survivor = store.order_pks(org)[0]
    db = warehouse_engine(target)
    with db.begin() as conn:
        conn.execute(
            sa.text("UPDATE orders SET deleted_at = :t WHERE org_pk = :o AND order_pk = :p"),
            {"t": datetime(2020, 1, 1, tzinfo=UTC), "o": org, "p": survivor},
        )
    with SyncEngine(settings, auto_migrate=True) as engine:
        report = engine.reconcile()
    rep = next(o for o in report.orgs if o.org_pk == org)
    assert rep.orders_deleted == 3 and rep.orders_restored == 1
    with db.connect() as conn:
        deleted = {
            r[0]
            for r in conn.execute(
                sa.text("SELECT order_pk FROM orders WHERE org_pk = :o AND deleted_at IS NOT NULL"),
                {"o": org},
            )
        }
        view_orders = {
            r[0]
            for r in conn.execute(
                sa.text("SELECT DISTINCT order_pk FROM order_lines WHERE org_pk = :o"), {"o": org}
            )
        }
    db.dispose()
    assert deleted == set(doomed)
    assert not view_orders & set(doomed)
    assert_warehouse_matches(target, expected_rows(store))


def test_backfill_days_resume_under_the_same_key(sandbox: SandboxServer, target) -> None:
    """Day-by-day backfills record each day; a rerun with the same key skips the done days."""
    settings = make_settings(sandbox, target)
    stamps = sorted(r["nested_updated_at"] for r in expected_rows(sandbox.store)["orders"])
    days = sorted({s.date() for s in stamps})[:4]
    with SyncEngine(settings, auto_migrate=True) as engine:
        first = engine.backfill_days(days, key="bf-1")
        again = engine.backfill_days(days, key="bf-1")
    assert sum(o.days_done for o in first.orgs) == 4 * 2
    assert sum(o.days_skipped for o in again.orgs) == 4 * 2
    assert again.total("orders_read") == 0
    since = datetime.combine(days[0], datetime.min.time(), tzinfo=UTC)
    until = datetime.combine(days[-1] + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    expected = expected_rows(sandbox.store, since=since, until=until)
    assert_warehouse_matches(target, expected)
    assert all(o.watermark_after is None for o in first.orgs)


def _busy_days(store: Any, n: int) -> list[date]:
    """`n` consecutive UTC days ending on the sandbox's busiest day."""
    stamps = [r["nested_updated_at"] for r in expected_rows(store)["orders"]]
    ((busiest, _),) = Counter(s.date() for s in stamps).most_common(1)
    return [busiest - timedelta(days=k) for k in reversed(range(n))]


def _per_org_day(store: Any, days: list[date]) -> dict[str, Counter[date]]:
    """Orders per org per day of `days` (by nested_updated_at), from the sandbox's model."""
    since, until = day_bounds(days[0], days[-1])
    out: dict[str, Counter[date]] = {}
    for row in expected_rows(store, since=since, until=until)["orders"]:
        out.setdefault(row["org_pk"], Counter())[row["nested_updated_at"].date()] += 1
    return out


def test_a_backfill_reads_consecutive_days_as_one_window(sandbox: SandboxServer, target) -> None:
    """Consecutive days cost the pages of their orders, not a walk per day; counts stay per day."""
    days = _busy_days(sandbox.store, 20)
    per_org = _per_org_day(sandbox.store, days)
    page = 5
    with SyncEngine(make_settings(sandbox, target, page_size=page), auto_migrate=True) as engine:
        report = engine.backfill_days(days, key="bf-window")
    assert report.status == "success"
    pages = sum(max(1, math.ceil(sum(c.values()) / page)) for c in per_org.values())
    # One filtered walk per org over the 20 days (a day-by-day walk would cost 20 per org).
    assert report.requests_by_purpose.get("list") == pages, report.requests_by_purpose
    for rep in report.orgs:
        assert rep.days_done == len(days)
        got = {day: counts["orders"].inserted for day, counts in rep.days.items()}
        want = per_org.get(rep.org_pk, Counter())
        assert got == {d.isoformat(): want.get(d, 0) for d in days}, rep.org_pk
    since, until = day_bounds(days[0], days[-1])
    assert_warehouse_matches(target, expected_rows(sandbox.store, since=since, until=until))


def test_a_backfill_window_records_days_as_it_goes_and_resumes(target) -> None:
    """Cut off mid-window, the days already loaded stay done; the rerun reads only the rest."""
    from rc_sandbox import SandboxConfig

    with SandboxServer(SandboxConfig(orgs=1, orders=400, seed=5)) as server:
        days = _busy_days(server.store, 40)
        (per_day,) = _per_org_day(server.store, days).values()
        settings = make_settings(server, target, page_size=2, batch_orders=4)
        server.config.update(fail_auth_after=12)  # the token "expires" mid-window
        with SyncEngine(settings, auto_migrate=True) as engine, pytest.raises(AuthenticationError):
            engine.backfill_days(days, key="bf-cut")
        done = state.days_done(warehouse_engine(target), server.store.org_pks()[0], "bf-cut")
        assert 0 < len(done) < len(days), done
        # A day recorded done has all of its rows.
        loaded = Counter(r["nested_updated_at"].date() for r in fetch_rows(target, "orders"))
        assert all(loaded.get(day, 0) == per_day.get(day, 0) for day in done)
        server.config.update(fail_auth_after=None)
        with SyncEngine(settings, auto_migrate=True) as engine:
            again = engine.backfill_days(days, key="bf-cut")
        assert again.status == "success"
        (rep,) = again.orgs
        assert (rep.days_skipped, rep.days_done) == (len(done), len(days) - len(done))
        since, until = day_bounds(days[0], days[-1])
        assert_warehouse_matches(target, expected_rows(server.store, since=since, until=until))
        assert_no_duplicate_keys(target)


def test_poisoned_values_become_null_plus_issue(target) -> None:
    """Unparseable values are NULL in their column and listed in load_issues; the rest is intact."""
    from rc_sandbox import SandboxConfig

    with SandboxServer(SandboxConfig(orgs=1, orders=200, seed=3, poison_rate=0.2)) as server:
        with SyncEngine(make_settings(server, target), auto_migrate=True) as engine:
            report = engine.sync_incremental()
        poisoned = expected_issues(server.store)
        assert report.status == "success"
        assert poisoned, "the sandbox should have poisoned some values"
        assert_warehouse_matches(target, expected_rows(server.store))
        issues = fetch_rows(target, "load_issues", live_only=False)
        got = {(i["org_pk"], i["order_pk"], i["table_name"], i["column_name"]) for i in issues}
        for org_pk, order_pk, table, column, _raw in poisoned:
            assert (org_pk, order_pk, table, column) in got
        assert report.total("load_issues_new") == len(issues)


def test_full_refresh_marks_and_clears_deletions(sandbox: SandboxServer, target) -> None:
    """`sync --full-refresh` reads the whole listing: it marks deletions and clears stale marks."""
    settings = make_settings(sandbox, target)
    store = sandbox.store
    with SyncEngine(settings, auto_migrate=True) as engine:
        engine.sync_incremental()
    org = store.org_pks()[0]
    doomed = store.order_pks(org)[:2]
    for pk in doomed:
        store.delete_order(org, pk)
    survivor = store.order_pks(org)[0]
    db = warehouse_engine(target)
    with db.begin() as conn:
        conn.execute(
            sa.text("UPDATE orders SET deleted_at = :t WHERE org_pk = :o AND order_pk = :p"),
            {"t": datetime(2020, 1, 1, tzinfo=UTC), "o": org, "p": survivor},
        )
    with SyncEngine(settings, auto_migrate=True) as engine:
        report = engine.sync_full_refresh()
    rep = next(o for o in report.orgs if o.org_pk == org)
    assert (rep.orders_deleted, rep.orders_restored) == (2, 1)
    with db.connect() as conn:
        deleted = set(
            conn.execute(
                sa.text("SELECT order_pk FROM orders WHERE org_pk = :o AND deleted_at IS NOT NULL"),
                {"o": org},
            ).scalars()
        )
    assert deleted == set(doomed)
    assert_warehouse_matches(target, expected_rows(store))
    # the mass-deletion guard of reconcile applies too
    for pk in store.order_pks(org)[: len(store.order_pks(org)) * 3 // 4]:
        store.delete_order(org, pk)

    with (
        SyncEngine(settings, auto_migrate=True) as engine,
        pytest.raises(RunFailed, match="refusing"),
    ):
        engine.sync_full_refresh()
    db.dispose()


def test_a_dead_run_is_marked_abandoned(sandbox: SandboxServer, target) -> None:
    """A `running` sync_runs row of a process that no longer exists becomes `abandoned`."""
    import os
    import socket
    import subprocess
    import sys

    settings = make_settings(sandbox, target)
    with SyncEngine(settings, auto_migrate=True) as engine:
        engine.sync_incremental()
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = int(child.stdout)
    org = sandbox.store.org_pks()[0]
    db = warehouse_engine(target)
    with db.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO sync_runs (kind, started_at, status, orgs, host, pid) "
                "VALUES ('incremental', :t, 'running', :orgs, :h, :p)"
            ),
            {
                "t": "2024-01-01T00:00:00.000000+00:00"
                if target.dialect == "sqlite"
                else datetime(2024, 1, 1, tzinfo=UTC),
                "orgs": f'["{org}"]',
                "h": socket.gethostname(),
                "p": dead_pid,
            },
        )
        conn.execute(
            sa.text(
                "INSERT INTO sync_runs (kind, started_at, status, orgs, host, pid) "
                "VALUES ('incremental', :t, 'running', :orgs, :h, :p)"
            ),
            {
                "t": "2024-01-01T00:00:00.000000+00:00"
                if target.dialect == "sqlite"
                else datetime(2024, 1, 1, tzinfo=UTC),
                "orgs": f'["{org}"]',
                "h": socket.gethostname(),
                "p": os.getpid(),
            },
        )
    with SyncEngine(settings, auto_migrate=True) as engine:
        engine.sync_incremental()
    with db.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT pid, status, finished_at FROM sync_runs WHERE started_at < :t"),
            {
                "t": "2025-01-01T00:00:00.000000+00:00"
                if target.dialect == "sqlite"
                else datetime(2025, 1, 1, tzinfo=UTC)
            },
        ).all()
    db.dispose()
    by_pid = {pid: (status, finished) for pid, status, finished in rows}
    assert by_pid[dead_pid][0] == "abandoned" and by_pid[dead_pid][1] is not None
    assert by_pid[os.getpid()][0] == "running"  # a live process is left alone
