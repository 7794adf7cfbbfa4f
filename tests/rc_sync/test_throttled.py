"""Runs against a sandbox throttled like ReadyCloud (per token, sliding window, 429 over it).

Every run here is a real `rc-sync` process; concurrent runs share the budget only through the
warehouse ledger. The sandbox window is short (20/4s) so that the tests take seconds.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import assert_warehouse_matches, cli_env, run_cli
from support.expected import expected_rows

from rc_sandbox import SandboxConfig, SandboxServer

SERVER_RATE = "20/4s"


@pytest.fixture
def throttled() -> Iterator[SandboxServer]:
    """A 500-order, 2-org sandbox that allows each token 20 GETs in any 4 seconds."""
    config = SandboxConfig(orgs=2, orders=500, seed=11, rate_limit=SERVER_RATE)
    with SandboxServer(config) as server:
        yield server


def _start(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "rc_sync.cli", *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen[str], what: str, timeout: float = 180) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"{what} exited {proc.returncode}:\n{err[-3000:]}"
    return out


def _env(
    server: SandboxServer, target: Any, rate: str = SERVER_RATE, **extra: str
) -> dict[str, str]:
    extra.setdefault("RC_SYNC_PAGE_SIZE", "10")
    return cli_env(server, target, READYCLOUD_RATE_LIMIT=rate, **extra)


def test_matching_client_is_never_throttled(
    throttled: SandboxServer, target: Any, tmp_path: Path
) -> None:
    env = _env(throttled, target)
    assert run_cli(["migrate"], env, tmp_path).returncode == 0
    result = run_cli(["sync"], env, tmp_path, timeout=180)
    assert result.returncode == 0, result.stderr
    stats = throttled.stats.snapshot()
    assert stats["requests"] > 40  # enough to cross the limit twice over
    assert stats["throttled"] <= 1
    assert "budget 20/4s" in result.stdout and "list" in result.stdout
    assert_warehouse_matches(target, expected_rows(throttled.store))


def test_sync_and_reconcile_processes_share_the_budget(
    throttled: SandboxServer, target: Any, tmp_path: Path
) -> None:
    env = _env(throttled, target)
    assert run_cli(["migrate"], env, tmp_path).returncode == 0
    store = throttled.store
    org = store.org_pks()[0]
    assert run_cli(["sync"], env, tmp_path, timeout=180).returncode == 0
    for pk in store.order_pks(org)[:5]:
        store.delete_order(org, pk)
    for pk in store.order_pks(org)[5:15]:
        store.update_order(org, pk, message="changed while throttled")
    throttled.stats.reset()
    full = _start(["sync", "--full-refresh"], env, tmp_path)
    reconcile = _start(["reconcile"], env, tmp_path)
    _finish(full, "sync --full-refresh")
    _finish(reconcile, "reconcile")
    stats = throttled.stats.snapshot()
    assert stats["requests"] > 60
    assert stats["throttled"] <= 3, stats
    assert_warehouse_matches(target, expected_rows(store))


@pytest.mark.parametrize("retry_after", [True, False], ids=["retry-after", "no-retry-after"])
def test_client_configured_too_high_still_finishes(
    throttled: SandboxServer, sqlite_target: Any, tmp_path: Path, retry_after: bool
) -> None:
    throttled.config.update(rate_limit_retry_after=retry_after)
    env = _env(throttled, sqlite_target, rate="60/4s")
    result = run_cli(["sync"], env, tmp_path, timeout=240)
    assert result.returncode == 0, result.stderr
    assert throttled.stats.snapshot()["throttled"] >= 1  # it did hit the real limit
    assert_warehouse_matches(sqlite_target, expected_rows(throttled.store))


def test_a_refresh_gets_its_share_next_to_a_backfill(
    throttled: SandboxServer, target: Any, tmp_path: Path
) -> None:
    env = _env(throttled, target, RC_SYNC_PAGE_SIZE="100")
    assert run_cli(["migrate"], env, tmp_path).returncode == 0
    assert run_cli(["sync"], env, tmp_path, timeout=180).returncode == 0
    store = throttled.store
    org = store.org_pks()[0]
    # A long backfill (small pages: about 170 requests, 35 s at 20/4s) ...
    backfill = _start(
        ["sync", "--since", "2023-01-01"], {**env, "RC_SYNC_PAGE_SIZE": "3"}, tmp_path
    )
    time.sleep(4)
    for pk in store.order_pks(org)[:3]:
        store.update_order(org, pk, message="changed during the backfill")
    started = time.monotonic()
    refresh = run_cli(["sync"], env, tmp_path, timeout=120)
    refresh_s = time.monotonic() - started
    assert refresh.returncode == 0, refresh.stderr
    assert backfill.poll() is None, "the backfill should still be running"
    # ... does not make the refresh (3 requests) wait its turn: about one window plus the
    # process's own start-up, not the backfill's remaining half minute.
    assert refresh_s < 15, refresh_s
    _finish(backfill, "backfill")
    assert throttled.stats.snapshot()["throttled"] <= 3
    assert_warehouse_matches(target, expected_rows(store))


def test_status_and_plan_show_the_budget(
    throttled: SandboxServer, sqlite_target: Any, tmp_path: Path
) -> None:
    env = _env(throttled, sqlite_target, RC_SYNC_PAGE_SIZE="100")
    assert run_cli(["sync"], env, tmp_path, timeout=180).returncode == 0
    status = run_cli(["status"], env, tmp_path)
    assert status.returncode == 0, status.stderr
    assert "API budget 20/4s" in status.stdout
    assert "last hour:" in status.stdout and "list" in status.stdout
    throttled.stats.reset()
    plan = run_cli(["plan", "--json"], env, tmp_path)
    assert plan.returncode == 0, plan.stderr
    doc = json.loads(plan.stdout)
    orgs = throttled.store.org_pks()
    # one request per org (the org listing: READYCLOUD_ORGS is not set)
    assert throttled.stats.snapshot()["requests"] <= len(orgs) + 1
    assert {o["org"] for o in doc["orgs"]} == set(orgs)
    assert sum(o["orders"] for o in doc["orgs"]) == 500
    assert doc["requests"]["first_load"] >= 500 // 100
    assert doc["seconds"]["reconcile"] is not None
