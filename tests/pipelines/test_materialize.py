"""In-process runs against the sandbox: one partition, a range, and a refresh run."""

from __future__ import annotations

import time
from datetime import UTC, timedelta
from typing import Any

import dagster as dg
from pipelines_support import assert_matches_sandbox, busiest_days, resources_for, window
from support import assert_no_duplicate_keys

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
    assert result.success
    since, until = window(day, day)
    expected = sandbox.store.expected_rows(since=since, until=until)
    assert expected["orders"], "the chosen day should have orders"
    assert_matches_sandbox(target, expected)
    orders = _materializations(result, "orders")
    assert [m.partition for m in orders] == [day.isoformat()]
    meta = orders[0].metadata
    assert meta["dagster/row_count"].value == len(expected["orders"])
    assert meta["rows_inserted"].value == len(expected["orders"])
    assert meta["rc_sync/api_requests"].value > 0
    assert meta["rc_sync/mode"].value == "backfill"
    assert "rc_sync/watermarks" in meta and "rc_sync/change_detection_path" in meta
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
        expected = sandbox.store.expected_rows(since=since, until=until)
        assert_matches_sandbox(target, expected)
        assert_no_duplicate_keys(target)
        orders = _materializations(result, "orders")
        assert sorted(m.partition for m in orders) == [
            (first + timedelta(days=n)).isoformat() for n in range(7)
        ]
        meta = orders[0].metadata
        assert meta["rc_sync/rows_in_run_window"].value == len(expected["orders"])
        assert meta["rc_sync/days_done"].value == 7 * len(sandbox.store.org_pks())
        again = dg.materialize(
            _assets(), tags=tags, resources=resources_for(sandbox, target), instance=instance
        )
    assert again.success
    again_meta = _materializations(again, "orders")[0].metadata
    assert again_meta["rc_sync/days_done"].value == 0
    assert again_meta["rc_sync/days_skipped"].value == 7 * len(sandbox.store.org_pks())
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
        assert_matches_sandbox(sqlite_target, sandbox.store.expected_rows())
        meta = _materializations(result, "orders")[0].metadata
        assert meta["rc_sync/mode"].value == "incremental"
        assert all(m["after"] for m in meta["rc_sync/watermarks"].value.values())
        # Hundreds of days at once are summarized, not marked one by one.
        assert "not marked one by one" in meta["rc_sync/other_partitions_touched"].value
        done = instance.get_materialized_partitions(dg.AssetKey(["readycloud", "orders"]))
        assert done == {today_key()}
        assert _checks(result)[("orders", "watermark_fresh")].passed
        second, second_s = _refresh(sandbox, sqlite_target, instance)
    assert second.success
    second_meta = _materializations(second, "orders")[0].metadata
    assert second_meta["rc_sync/orders_new"].value == 0
    assert "rc_sync/other_partitions_touched" not in second_meta
    print(f"refresh: first (full) {first_s:.1f}s, second (nothing new) {second_s:.1f}s")


def test_refresh_run_marks_the_other_days_it_loaded(sqlite_target: Any) -> None:
    """The days a refresh loaded orders for are reported as materialized partitions."""
    from pipelines_support import sandbox_config

    from pipelines.partitions import today_key
    from rc_sandbox import SandboxServer

    with SandboxServer(sandbox_config(orders=30)) as small, dg.instance_for_test() as instance:
        result, _ = _refresh(small, sqlite_target, instance)
        assert result.success
        days = {
            o["nested_updated_at"].astimezone(UTC).date().isoformat()
            for o in small.store.expected_rows()["orders"]
        }
        done = instance.get_materialized_partitions(dg.AssetKey(["readycloud", "items"]))
    assert done == days | {today_key()}


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
    assert_matches_sandbox(sqlite_target, sandbox.store.expected_rows(since=since, until=until))
    print(f"30-day single-run backfill: {elapsed:.1f}s")
