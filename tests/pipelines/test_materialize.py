"""In-process runs against the sandbox: one partition, a range, and a refresh run."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import dagster as dg
from pipelines_support import (
    assert_matches_sandbox,
    busiest_days,
    expected_per_day,
    resources_for,
    window,
)
from support import assert_no_duplicate_keys
from support.expected import expected_rows

TABLES = ("orders", "boxes", "items", "addresses")


def _assets() -> list[Any]:
    from pipelines.assets import readycloud_sync, readycloud_views
    from pipelines.checks import readycloud_integrity_checks, row_count_matches_api

    return [readycloud_sync, readycloud_views, readycloud_integrity_checks, row_count_matches_api]


def _materializations(result: dg.ExecuteInProcessResult, table: str) -> list[Any]:
    key = dg.AssetKey(["readycloud", table])
    return [
        m for m in result.asset_materializations_for_node("readycloud_sync") if m.asset_key == key
    ]


def _checks(result: dg.ExecuteInProcessResult) -> dict[tuple[str, str], Any]:
    return {(e.asset_key.path[-1], e.check_name): e for e in result.get_asset_check_evaluations()}


def test_one_partition(sandbox: Any, target: Any) -> None:
    """One day: the tables hold exactly the sandbox's orders of that day; checks pass."""
    (day,) = busiest_days(sandbox)
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            _assets(),
            partition_key=day.isoformat(),
            resources=resources_for(sandbox, target),
            instance=instance,
        )
        tags = instance.get_run_by_id(result.run_id).tags
    assert result.success
    since, until = window(day, day)
    expected = expected_rows(sandbox.store, since=since, until=until)
    assert expected["orders"], "the chosen day should have orders"
    assert_matches_sandbox(target, expected)
    orders = _materializations(result, "orders")
    assert [m.partition for m in orders] == [day.isoformat()]
    meta = orders[0].metadata
    assert meta["dagster/row_count"].value == len(expected["orders"])
    assert meta["rows_inserted"].value == len(expected["orders"])
    assert meta["rc_sync/mode"].value == "backfill"
    assert "rc_sync/api_requests" not in meta  # run-level totals are on the run
    assert int(tags["rc_sync/api_requests"]) > 0
    assert tags["rc_sync/change_detection_path"] != "n/a"
    items_meta = _materializations(result, "items")[0].metadata
    assert items_meta["dagster/row_count"].value == len(expected["items"])
    checks = _checks(result)
    for name in ("unique_keys", "no_orphans", "row_count_matches_api", "no_new_load_issues"):
        failing = [k for k, v in checks.items() if k[1] == name and not v.passed]
        assert not failing, failing
    assert checks[("orders", "row_count_matches_api")].metadata["api_orders"].value == len(
        expected["orders"]
    )
    views = result.asset_materializations_for_node("readycloud_views")
    assert {m.asset_key.path[-1] for m in views} == {"order_lines", "daily_order_summary"}


def test_a_range_in_one_run_resumes_under_the_same_key(sandbox: Any, target: Any) -> None:
    """A 7-day range is one run reading each day; rerunning with the same backfill id skips them."""
    (day,) = busiest_days(sandbox)
    first, last = day - timedelta(days=3), day + timedelta(days=3)
    tags = {
        "dagster/asset_partition_range_start": first.isoformat(),
        "dagster/asset_partition_range_end": last.isoformat(),
        "dagster/backfill": "testbackfill",
    }
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            _assets(), tags=tags, resources=resources_for(sandbox, target), instance=instance
        )
        assert result.success
        since, until = window(first, last)
        expected = expected_rows(sandbox.store, since=since, until=until)
        assert_matches_sandbox(target, expected)
        assert_no_duplicate_keys(target)
        days = [(first + timedelta(days=n)).isoformat() for n in range(7)]
        per_day = expected_per_day(expected)
        for table in TABLES:
            # One materialization per day, each with that day's own counts (not the run's).
            seen = {m.partition: m.metadata for m in _materializations(result, table)}
            assert sorted(seen) == days
            for key in days:
                want = per_day.get(key, {}).get(table, 0)
                assert seen[key]["dagster/row_count"].value == want, (table, key)
                assert seen[key]["rows_inserted"].value == want, (table, key)
            assert sum(m["rows_inserted"].value for m in seen.values()) == len(expected[table])
        run_tags = instance.get_run_by_id(result.run_id).tags
        assert run_tags["rc_sync/days_done"] == str(7 * len(sandbox.store.org_pks()))
        assert run_tags["rc_sync/api_requests_by_purpose"] != "none"
        assert float(run_tags["rc_sync/api_budget_wait_s"]) >= 0
        again = dg.materialize(
            _assets(), tags=tags, resources=resources_for(sandbox, target), instance=instance
        )
        again_tags = instance.get_run_by_id(again.run_id).tags
    assert again.success
    assert again_tags["rc_sync/days_done"] == "0"
    assert again_tags["rc_sync/days_skipped"] == str(7 * len(sandbox.store.org_pks()))
    again_orders = {m.partition: m.metadata for m in _materializations(again, "orders")}
    for key in days:  # a resumed day wrote nothing, and still has its rows
        assert again_orders[key]["rows_inserted"].value == 0
        assert again_orders[key]["dagster/row_count"].value == per_day.get(key, {}).get("orders", 0)
    assert_matches_sandbox(target, expected)


def _refresh(server: Any, target: Any, instance: Any) -> tuple[dg.ExecuteInProcessResult, float]:
    from pipelines.partitions import today_key

    started = time.monotonic()
    result = dg.materialize(
        _assets(),
        partition_key=today_key(),
        tags={"rc_sync/mode": "incremental"},
        resources=resources_for(server, target),
        instance=instance,
    )
    return result, time.monotonic() - started


def test_refresh_run_syncs_incrementally(sandbox: Any, sqlite_target: Any) -> None:
    """A run tagged rc_sync/mode=incremental: first a full sync, then nothing new."""
    from pipelines.partitions import today_key

    with dg.instance_for_test() as instance:
        result, first_s = _refresh(sandbox, sqlite_target, instance)
        assert result.success
        assert_matches_sandbox(sqlite_target, expected_rows(sandbox.store))
        meta = _materializations(result, "orders")[0].metadata
        assert meta["rc_sync/mode"].value == "incremental"
        # Hundreds of days at once are summarized in the log, not marked one by one.
        done = instance.get_materialized_partitions(dg.AssetKey(["readycloud", "orders"]))
        assert done == {today_key()}
        fresh = _checks(result)[("orders", "watermark_fresh")]
        assert fresh.passed and fresh.metadata["max_lag_minutes"].value < 60
        second, second_s = _refresh(sandbox, sqlite_target, instance)
        second_tags = instance.get_run_by_id(second.run_id).tags
    assert second.success
    assert second_tags["rc_sync/orders_new"] == "0"
    print(f"refresh: first (full) {first_s:.1f}s, second (nothing new) {second_s:.1f}s")


def test_refresh_run_marks_the_other_days_it_loaded(sqlite_target: Any) -> None:
    """The days a refresh loaded orders for are reported as materialized partitions."""
    from pipelines_support import sandbox_config

    from pipelines.partitions import today_key
    from rc_sandbox import SandboxServer

    with SandboxServer(sandbox_config(orders=30)) as small, dg.instance_for_test() as instance:
        result, _ = _refresh(small, sqlite_target, instance)
        assert result.success
        per_day = expected_per_day(expected_rows(small.store))
        done = instance.get_materialized_partitions(dg.AssetKey(["readycloud", "items"]))
    assert done == set(per_day) | {today_key()}
    marked = {m.partition: m.metadata for m in _materializations(result, "items")}
    for day, counts in per_day.items():  # each marked day carries its own row count
        assert marked[day]["dagster/row_count"].value == counts["items"]


def test_thirty_day_backfill_timing(sandbox: Any, sqlite_target: Any) -> None:
    """A 30-day single-run backfill finishes and matches the sandbox (the time is printed)."""
    (day,) = busiest_days(sandbox)
    first, last = day - timedelta(days=29), day
    started = time.monotonic()
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            _assets(),
            tags={
                "dagster/asset_partition_range_start": first.isoformat(),
                "dagster/asset_partition_range_end": last.isoformat(),
            },
            resources=resources_for(sandbox, sqlite_target),
            instance=instance,
        )
    elapsed = time.monotonic() - started
    assert result.success
    since, until = window(first, last)
    assert_matches_sandbox(sqlite_target, expected_rows(sandbox.store, since=since, until=until))
    print(f"30-day single-run backfill: {elapsed:.1f}s")
