"""Asset checks pass on a fresh sync and fail on data corrupted directly in the warehouse."""

from __future__ import annotations

from typing import Any

import dagster as dg
import sqlalchemy as sa
from pipelines_support import busiest_days, resources_for
from support import warehouse_engine


def _defs(sandbox: Any, target: Any) -> dg.Definitions:
    from pipelines.assets import readycloud_sync, readycloud_views
    from pipelines.checks import readycloud_integrity_checks, row_count_matches_api

    return dg.Definitions(
        assets=[readycloud_sync, readycloud_views],
        asset_checks=[readycloud_integrity_checks, row_count_matches_api],
        jobs=[
            dg.define_asset_job("sync", selection=dg.AssetSelection.groups("readycloud")),
            dg.define_asset_job(
                "checks_only",
                selection=dg.AssetSelection.checks(
                    readycloud_integrity_checks, row_count_matches_api
                ),
            ),
        ],
        resources=resources_for(sandbox, target),
    )


def _results(result: dg.ExecuteInProcessResult) -> dict[tuple[str, str], Any]:
    return {(e.asset_key.path[-1], e.check_name): e for e in result.get_asset_check_evaluations()}


def _sync_then_check(sandbox: Any, target: Any, instance: Any) -> tuple[dg.Definitions, str]:
    (day,) = busiest_days(sandbox)
    defs = _defs(sandbox, target)
    synced = defs.resolve_job_def("sync").execute_in_process(
        partition_key=day.isoformat(), instance=instance
    )
    assert synced.success
    # Everything passes; freshness as not applicable (a backfill never sets the watermark).
    failing = {k: r.description for k, r in _results(synced).items() if not r.passed}
    assert not failing, failing
    return defs, day.isoformat()


def _run_checks(defs: dg.Definitions, instance: Any, partition: str) -> dict[tuple[str, str], Any]:
    job = defs.resolve_job_def("checks_only")
    result = job.execute_in_process(
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": partition,
            "dagster/asset_partition_range_end": partition,
        },
        raise_on_error=False,
    )
    return _results(result)


def _unconstrain_items(conn: sa.Connection) -> None:
    """Rebuild items without keys or foreign keys, so corrupt rows can go in (views first)."""
    conn.execute(sa.text("DROP VIEW IF EXISTS daily_order_summary"))
    conn.execute(sa.text("DROP VIEW IF EXISTS order_lines"))
    conn.execute(sa.text("CREATE TABLE items_copy AS SELECT * FROM items"))
    conn.execute(sa.text("DROP TABLE items"))
    conn.execute(sa.text("ALTER TABLE items_copy RENAME TO items"))


def test_checks_fail_on_an_orphan_item_and_a_duplicate_key(sandbox: Any, target: Any) -> None:
    """An item whose box does not exist and a duplicated item key fail blocking ERROR checks."""
    with dg.instance_for_test() as instance:
        defs, day = _sync_then_check(sandbox, target, instance)
        engine = warehouse_engine(target)
        try:
            with engine.begin() as conn:
                _unconstrain_items(conn)
                row = conn.execute(sa.text("SELECT org_pk, order_pk FROM items LIMIT 1")).one()
                conn.execute(
                    sa.text(
                        "INSERT INTO items (org_pk, order_pk, box_pk, item_pk) "
                        "VALUES (:org, :order, 'no-such-box', 'orphan-item')"
                    ),
                    {"org": row.org_pk, "order": row.order_pk},
                )
                conn.execute(
                    sa.text(
                        "INSERT INTO items (org_pk, order_pk, box_pk, item_pk) "
                        "SELECT org_pk, order_pk, box_pk, item_pk FROM items "
                        "WHERE box_pk <> 'no-such-box' LIMIT 1"
                    )
                )
        finally:
            engine.dispose()
        results = _run_checks(defs, instance, day)
    orphan = results[("items", "no_orphans")]
    assert not orphan.passed and orphan.severity == dg.AssetCheckSeverity.ERROR
    assert orphan.metadata["orphans"].value == 1
    dupes = results[("items", "unique_keys")]
    assert not dupes.passed and dupes.severity == dg.AssetCheckSeverity.ERROR
    assert dupes.metadata["duplicated_keys"].value == 1
    assert results[("orders", "unique_keys")].passed
    assert results[("boxes", "no_orphans")].passed


def test_row_count_check_fails_when_the_warehouse_lost_an_order(sandbox: Any, target: Any) -> None:
    """An order missing from the warehouse's live rows makes the count differ from the API's."""
    with dg.instance_for_test() as instance:
        defs, day = _sync_then_check(sandbox, target, instance)
        engine = warehouse_engine(target)
        try:
            with engine.begin() as conn:
                order_pk = conn.execute(sa.text("SELECT order_pk FROM orders LIMIT 1")).scalar_one()
                conn.execute(
                    sa.text("UPDATE orders SET deleted_at = synced_at WHERE order_pk = :pk"),
                    {"pk": order_pk},
                )
        finally:
            engine.dispose()
        results = _run_checks(defs, instance, day)
    count = results[("orders", "row_count_matches_api")]
    assert not count.passed and count.severity == dg.AssetCheckSeverity.WARN
    assert count.metadata["api_orders"].value == count.metadata["warehouse_orders"].value + 1


def test_freshness_does_not_apply_before_a_live_sync(sandbox: Any, sqlite_target: Any) -> None:
    """Only backfills so far: no live watermark to judge; it passes saying so, no sentinel."""
    with dg.instance_for_test() as instance:
        defs, day = _sync_then_check(sandbox, sqlite_target, instance)
        results = _run_checks(defs, instance, day)
    fresh = results[("orders", "watermark_fresh")]
    assert fresh.passed and fresh.severity == dg.AssetCheckSeverity.WARN
    assert "not applicable" in (fresh.description or "")
    assert "max_lag_minutes" not in fresh.metadata


def test_freshness_warns_when_the_watermark_is_old() -> None:
    """A live watermark older than the limit fails (WARN) with the real lag, never -1."""
    from datetime import UTC, datetime, timedelta

    from pipelines.checks import _freshness

    now = datetime.now(UTC)
    old = _freshness({"7": now - timedelta(hours=3), "8": now}, {}, 60.0)
    assert not old.passed and "7" in (old.description or "")
    assert 179 < old.metadata["max_lag_minutes"].value < 181
    fresh = _freshness({"7": now - timedelta(minutes=5)}, {}, 60.0)
    assert fresh.passed


def test_load_issues_check_warns_when_a_run_records_new_issues(
    tmp_path: Any, sqlite_target: Any
) -> None:
    """A sandbox with unparseable values: the run succeeds and the WARN check reports them."""
    from pipelines_support import sandbox_config

    from pipelines.partitions import today_key
    from rc_sandbox import SandboxServer

    with (
        SandboxServer(sandbox_config(orders=200, poison_rate=0.2)) as poisoned,
        dg.instance_for_test() as instance,
    ):
        defs = _defs(poisoned, sqlite_target)
        result = defs.resolve_job_def("sync").execute_in_process(
            partition_key=today_key(), instance=instance, tags={"rc_sync/mode": "incremental"}
        )
    assert result.success
    issues = _results(result)[("orders", "no_new_load_issues")]
    assert not issues.passed and issues.severity == dg.AssetCheckSeverity.WARN
    assert issues.metadata["load_issues_new"].value > 0


def test_stale_normalization_warns_and_the_rebuild_job_fixes_it(sandbox: Any, target: Any) -> None:
    """Orders typed by an older normalization fail a WARN check until readycloud_rebuild runs."""
    from pipelines.rebuild import readycloud_rebuild

    with dg.instance_for_test() as instance:
        defs, day = _sync_then_check(sandbox, target, instance)
        assert _run_checks(defs, instance, day)[("orders", "normalization_current")].passed
        engine = warehouse_engine(target)
        try:
            with engine.begin() as conn:
                conn.execute(sa.text("UPDATE orders SET normalize_version = 0, ship_via = 'old'"))
        finally:
            engine.dispose()
        stale = _run_checks(defs, instance, day)[("orders", "normalization_current")]
        assert not stale.passed and stale.severity == dg.AssetCheckSeverity.WARN
        assert "rc-sync rebuild" in (stale.description or "")
        requests = sandbox.stats.snapshot()["requests"]
        rebuilt = readycloud_rebuild.execute_in_process(
            instance=instance, resources=resources_for(sandbox, target)
        )
        assert rebuilt.success
        assert sandbox.stats.snapshot()["requests"] == requests
        assert _run_checks(defs, instance, day)[("orders", "normalization_current")].passed
        engine = warehouse_engine(target)
        try:
            with engine.connect() as conn:
                assert not conn.execute(
                    sa.text("SELECT count(*) FROM orders WHERE ship_via = 'old'")
                ).scalar()
        finally:
            engine.dispose()


def test_schema_drift_warns_on_a_field_no_column_maps(sandbox: Any, target: Any) -> None:
    """A stored document with a new field fails the WARN check `no_schema_drift`, naming it."""
    from warehouse.models import orders_table

    with dg.instance_for_test() as instance:
        defs, day = _sync_then_check(sandbox, target, instance)
        assert _run_checks(defs, instance, day)[("orders", "no_schema_drift")].passed
        engine = warehouse_engine(target)
        try:
            with engine.begin() as conn:
                pk, raw = conn.execute(
                    sa.select(orders_table.c.order_pk, orders_table.c.raw)
                    .order_by(orders_table.c.nested_updated_at.desc())
                    .limit(1)
                ).one()
                conn.execute(
                    sa.update(orders_table)
                    .where(orders_table.c.order_pk == pk)
                    .values(raw={**raw, "loyalty_tier": "gold"})
                )
        finally:
            engine.dispose()
        drift = _run_checks(defs, instance, day)[("orders", "no_schema_drift")]
        assert not drift.passed and drift.severity == dg.AssetCheckSeverity.WARN
        assert "loyalty_tier" in (drift.description or "")
