"""Dagster runs against a sandbox throttled like ReadyCloud (20 GETs in any 4 s, per token).

A backfill runs as its own `dagster asset materialize` process while a refresh runs in this
one: they share the App's budget only through the warehouse ledger, as a UI backfill and the
schedule's refresh do in a deployment.
"""

from __future__ import annotations

import subprocess
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from pipelines_support import (
    REPO,
    assert_matches_sandbox,
    busiest_days,
    dagster_cli_env,
    materialize_command,
    resources_for,
    sandbox_config,
)
from support.expected import expected_rows

from rc_sandbox import SandboxServer

SERVER_RATE = "20/4s"
TABLES = ("orders", "boxes", "items", "addresses")


def _assets() -> list[Any]:
    from pipelines.assets import readycloud_sync, readycloud_views
    from pipelines.checks import readycloud_integrity_checks, row_count_matches_api

    return [readycloud_sync, readycloud_views, readycloud_integrity_checks, row_count_matches_api]


def _refresh(server: Any, target: Any, instance: Any) -> dg.ExecuteInProcessResult:
    from pipelines.partitions import today_key

    return dg.materialize(
        _assets(),
        partition_key=today_key(),
        tags={"rc_sync/mode": "incremental"},
        resources=resources_for(server, target),
        instance=instance,
    )


def _wait_for(what: str, predicate: Any, proc: subprocess.Popen[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the backfill ended before {what}:\n{out[-2000:]}\n{err[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_a_dagster_backfill_next_to_a_refresh_shares_the_budget(
    pg_target: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both finish, the warehouse equals the source, hardly a 429, the refresh is not starved.

    On PostgreSQL, the deployment's warehouse (the CLI tests in tests/rc_sync/test_throttled.py
    cover the same sharing on both databases).
    """
    target = pg_target
    monkeypatch.setenv("READYCLOUD_RATE_LIMIT", SERVER_RATE)
    with SandboxServer(sandbox_config(rate_limit=SERVER_RATE)) as server:
        store = server.store
        with dg.instance_for_test() as instance:
            assert _refresh(server, target, instance).success  # the first load
        (busiest,) = busiest_days(server)
        from pipelines.partitions import today_key

        first = busiest - timedelta(days=45)
        last = min(busiest + timedelta(days=45), date.fromisoformat(today_key()))
        env = dagster_cli_env(
            tmp_path / "dagster_home",
            server,
            target,
            READYCLOUD_RATE_LIMIT=SERVER_RATE,
            RC_SYNC_PAGE_SIZE="2",  # ~80 requests: about 20 s of the budget's bulk share
        )
        before = server.stats.snapshot()
        backfill = subprocess.Popen(
            materialize_command(
                ",".join(f"readycloud/{t}" for t in TABLES),
                f"{first.isoformat()}...{last.isoformat()}",
            ),
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            _wait_for(
                "its sync step reading pages",
                lambda: server.stats.snapshot()["list"] - before["list"] >= 10,
                backfill,
                120,
            )
            org = store.org_pks()[0]
            for pk in store.order_pks(org)[:3]:
                store.update_order(org, pk, message="changed during the backfill")
            started = time.monotonic()
            with dg.instance_for_test() as instance:
                refresh = _refresh(server, target, instance)
                tags = instance.get_run_by_id(refresh.run_id).tags
            refresh_s = time.monotonic() - started
            assert refresh.success
            assert tags["rc_sync/orders_updated"] == "3"
            assert tags["rc_sync/api_budget"] == SERVER_RATE
            assert backfill.poll() is None, "the backfill should still be running"
            # The refresh (a few requests) kept its reserved share: it waited for the budget
            # at most about one window, not for the backfill's remaining pages (~15 s).
            assert float(tags["rc_sync/api_budget_wait_s"]) <= 5, tags
            assert refresh_s < 60, refresh_s
            out, err = backfill.communicate(timeout=240)
        finally:
            if backfill.poll() is None:
                backfill.kill()
                backfill.communicate()
        assert backfill.returncode == 0, f"{out[-2000:]}\n{err[-4000:]}"
        assert "RUN_SUCCESS" in err + out
        stats = server.stats.snapshot()
        assert stats["list"] - before["list"] > 40  # the backfill really crossed the limit
        assert stats["throttled"] <= 3, stats
        assert_matches_sandbox(target, expected_rows(store))
        print(
            f"\n[throttled] refresh next to the backfill: {refresh_s:.1f}s; "
            f"{stats['list'] - before['list']} list requests, {stats['throttled']} 429s"
        )
