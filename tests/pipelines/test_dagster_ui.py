"""Real UI backfills against `dagster dev` in sandbox mode.

Two ways in: the UI's own GraphQL mutation (what the "Materialize selected partitions" dialog
sends), and a real browser (Debian's Chromium driven by Playwright) clicking through the UI
as a user does.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from pipelines_support import (
    REPO,
    SANDBOX_DATA_UNTIL,
    SANDBOX_ORDERS,
    assert_matches_sandbox,
    busiest_days,
    clean_environ,
    free_port,
    sandbox_config,
    window,
)
from support.expected import expected_rows

DAGSTER = REPO / ".venv" / "bin" / "dagster"
TABLES = ("orders", "boxes", "items", "addresses")

LOCATIONS = """
{ workspaceOrError { __typename ... on Workspace { locationEntries {
    name loadStatus
    locationOrLoadError { __typename ... on PythonError { message } }
} } } }
"""

# The mutation the UI's "Materialize selected partitions" dialog sends for an asset backfill.
LAUNCH = """
mutation LaunchPartitionBackfill($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
    ... on PartitionKeysNotFoundError { message }
    ... on UnauthorizedError { message }
  }
}
"""

BACKFILL = """
query Backfill($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill { id status numPartitions error { message } }
    ... on PythonError { message }
  }
}
"""

RUNS = """
query Runs($tag: String!) {
  runsOrError(filter: {tags: [{key: "dagster/backfill", value: $tag}]}) {
    ... on Runs { results { runId status tags { key value } } }
  }
}
"""


@dataclass
class DagsterDev:
    """A running `dagster dev` and where to reach it."""

    process: subprocess.Popen[bytes]
    url: str
    home: Path
    log: Path

    def query(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """POST one GraphQL document; return its data or fail with its errors."""
        response = httpx.post(
            f"{self.url}/graphql", json={"query": query, "variables": variables or {}}, timeout=30
        )
        response.raise_for_status()
        body = response.json()
        assert not body.get("errors"), body["errors"]
        return dict(body["data"])

    def tail(self) -> str:
        """The end of the dagster dev log, for failure messages."""
        return self.log.read_text(errors="replace")[-6000:]


def _group_members(pgid: int) -> list[psutil.Process]:
    """Live (non-zombie) processes of a process group."""
    members = []
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                members.append(proc)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


def _stop(process: subprocess.Popen[bytes]) -> bool:
    """SIGTERM the whole process group, then SIGKILL what is left; True if SIGTERM sufficed."""
    pgid = process.pid  # start_new_session=True: the group id is the leader's pid
    for sig, grace in ((signal.SIGTERM, 60.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return sig == signal.SIGTERM
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            process.poll()
            if not _group_members(pgid):
                return sig == signal.SIGTERM
            time.sleep(0.5)
    return False


@pytest.fixture
def dagster_dev(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[DagsterDev]:
    """`dagster dev -w workspace.yaml` with RC_SANDBOX=1, its own DAGSTER_HOME and ports.

    The sandbox's size is SANDBOX_ORDERS unless the test parametrizes the fixture indirectly
    (None: the sandbox mode's own default, as the README runs it).
    """
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    port, sandbox_port = free_port(), free_port()
    orders = getattr(request, "param", SANDBOX_ORDERS)
    env = clean_environ(
        DAGSTER_HOME=str(home),
        RC_SANDBOX="1",
        RC_SANDBOX_PORT=str(sandbox_port),
        RC_SANDBOX_DATA_UNTIL=SANDBOX_DATA_UNTIL,  # fixed data: the same as sandbox_config()'s
        **({} if orders is None else {"RC_SANDBOX_ORDERS": str(orders)}),
    )
    log = tmp_path / "dagster-dev.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(DAGSTER), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
            cwd=REPO,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    dev = DagsterDev(process, f"http://127.0.0.1:{port}", home, log)
    try:
        _wait_until_loaded(dev)
        yield dev
    finally:
        clean = _stop(process)
        assert not _group_members(process.pid), "dagster dev left processes behind"
    assert clean, f"dagster dev did not stop on SIGTERM:\n{dev.tail()}"


def _wait_until_loaded(dev: DagsterDev, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert dev.process.poll() is None, f"dagster dev exited:\n{dev.tail()}"
        try:
            entries = dev.query(LOCATIONS)["workspaceOrError"]["locationEntries"]
        except (httpx.HTTPError, KeyError):
            time.sleep(1)
            continue
        if entries and all(e["loadStatus"] == "LOADED" for e in entries):
            errors = [e for e in entries if e["locationOrLoadError"]["__typename"] == "PythonError"]
            assert not errors, errors
            return
        time.sleep(1)
    pytest.fail(f"the code location did not load in {timeout}s:\n{dev.tail()}")


@pytest.mark.dagster_ui
def test_ui_partition_backfill_in_sandbox_mode(dagster_dev: DagsterDev) -> None:
    """Launch a 3-day backfill the way the UI does; it completes and the tables match."""
    from rc_sandbox import SandboxServer

    reference = SandboxServer(sandbox_config())  # same seed: the same data as the code location's
    (day,) = busiest_days(reference)
    days = [day + timedelta(days=n) for n in (-1, 0, 1)]
    launched = dagster_dev.query(
        LAUNCH,
        {
            "backfillParams": {
                "assetSelection": [{"path": ["readycloud", t]} for t in TABLES],
                "partitionNames": [d.isoformat() for d in days],
                "fromFailure": False,
                "tags": [],
            }
        },
    )["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill_id = launched["backfillId"]

    deadline = time.monotonic() + 300
    status = None
    while time.monotonic() < deadline:
        backfill = dagster_dev.query(BACKFILL, {"id": backfill_id})["partitionBackfillOrError"]
        status = backfill.get("status")
        if status in {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}:
            break
        time.sleep(2)
    runs = dagster_dev.query(RUNS, {"tag": backfill_id})["runsOrError"]["results"]
    assert status in {"COMPLETED", "COMPLETED_SUCCESS"}, (status, runs, dagster_dev.tail())
    assert len(runs) == 1 and runs[0]["status"] == "SUCCESS", runs  # single_run backfill policy

    warehouse = dagster_dev.home / "rc-sync-sandbox.db"
    assert warehouse.exists(), "sandbox mode keeps its warehouse next to the Dagster instance"

    @dataclass
    class Target:
        url: str
        schema: str = "readycloud"
        dialect: str = "sqlite"

    since, until = window(days[0], days[-1])
    assert_matches_sandbox(
        Target(f"sqlite:///{warehouse}"), expected_rows(reference.store, since=since, until=until)
    )


# -- the same, in a real browser ------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"  # Debian's package (.ci/run installs it); never `playwright install`
WEEK = [date(2024, 5, day) for day in range(1, 8)]

MATERIALIZATIONS = """
query Materializations($key: AssetKeyInput!, $partitions: [String!]) {
  assetOrError(assetKey: $key) {
    ... on Asset {
      assetMaterializations(partitions: $partitions) {
        partition runId timestamp
        metadataEntries { label ... on IntMetadataEntry { intValue } }
      }
    }
  }
}
"""

CHECKS = """
query Checks($key: AssetKeyInput!) {
  assetNodeOrError(assetKey: $key) {
    ... on AssetNode {
      assetChecksOrError { ... on AssetChecks { checks {
        name
        executionForLatestMaterialization { status evaluation { success description } }
      } } }
    }
  }
}
"""

BACKFILLS = """
{ partitionBackfillsOrError { ... on PartitionBackfills { results {
    id status numPartitions assetSelection { path }
    runs(limit: 20) { runId status }
} } } }
"""

# Rows per UTC day of their order's nested_updated_at, written out plainly (not the product's
# SQL): SQLite stores timestamps as fixed-width ISO-8601 UTC text.
DAY_COUNTS = {
    "orders": "SELECT substr(o.nested_updated_at, 1, 10) AS day, count(*) FROM orders o "
    "WHERE o.deleted_at IS NULL AND o.nested_updated_at >= ? AND o.nested_updated_at < ? "
    "GROUP BY day",
    **{
        child: f"SELECT substr(o.nested_updated_at, 1, 10) AS day, count(*) FROM {child} c "
        "JOIN orders o ON o.org_pk = c.org_pk AND o.order_pk = c.order_pk "
        "WHERE o.deleted_at IS NULL AND o.nested_updated_at >= ? AND o.nested_updated_at < ? "
        "GROUP BY day"
        for child in ("boxes", "items", "addresses")
    },
}


def _warehouse_day_counts(path: Path) -> dict[str, dict[str, int]]:
    """table -> day -> rows, by plain SQL on the sandbox warehouse."""
    bounds = (WEEK[0].isoformat(), (WEEK[-1] + timedelta(days=1)).isoformat())
    with sqlite3.connect(path) as conn:
        return {
            table: {day: 0 for day in map(date.isoformat, WEEK)}
            | dict(conn.execute(sql, bounds).fetchall())
            for table, sql in DAY_COUNTS.items()
        }


def _launch_week_backfill_in_the_browser(url: str, shots: Path) -> None:
    """Assets → readycloud → Materialize all → the week's partitions → Launch backfill."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        # --no-sandbox: Chromium refuses to run as root (CI) with its own sandbox.
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            # A fresh instance greets a new user once, whenever it likes: skip it, as a user does.
            page.add_locator_handler(
                page.get_by_role("button", name="Skip"), lambda skip: skip.click()
            )
            page.goto(f"{url}/locations/rc-sync/asset-groups/readycloud")
            page.get_by_role("button", name="Materialize all").click()
            dialog = page.get_by_role("dialog").filter(has_text="Launch runs to materialize")
            expect(dialog).to_contain_text("6 assets")  # the four tables and the two views
            dialog.get_by_text("Show all partitions").click()
            selection = dialog.get_by_role("textbox").first  # the partition selection
            selection.fill(f"[{WEEK[0]}...{WEEK[-1]}]")
            selection.press("Enter")
            expect(dialog).to_contain_text("7 partitions")
            page.screenshot(path=str(shots / "launch-dialog.png"))
            dialog.get_by_role("button", name="Launch backfill").click()
            expect(dialog).to_be_hidden(timeout=30_000)
            page.goto(f"{url}/overview/backfills")
            expect(page.get_by_text("7 partitions").first).to_be_visible(timeout=60_000)
            page.screenshot(path=str(shots / "backfills.png"))
        finally:
            browser.close()


def _wait_for_backfill(dev: DagsterDev, timeout: float = 480) -> dict[str, Any]:
    """The one backfill of the instance, once it has finished."""
    deadline = time.monotonic() + timeout
    while True:
        (backfill,) = dev.query(BACKFILLS)["partitionBackfillsOrError"]["results"]
        if backfill["status"] not in {"REQUESTED", "CANCELING", "FAILING"}:
            return dict(backfill)
        assert time.monotonic() < deadline, (backfill, dev.tail())
        time.sleep(3)


def _latest_per_partition(dev: DagsterDev, table: str) -> dict[str, dict[str, int | None]]:
    """The latest materialization of each of the week's partitions: its int metadata."""
    found = dev.query(
        MATERIALIZATIONS,
        {"key": {"path": ["readycloud", table]}, "partitions": [d.isoformat() for d in WEEK]},
    )["assetOrError"]["assetMaterializations"]
    latest: dict[str, dict[str, int | None]] = {}
    for event in sorted(found, key=lambda e: float(e["timestamp"])):
        latest[event["partition"]] = {
            e["label"]: e.get("intValue") for e in event["metadataEntries"]
        }
    return latest


@pytest.mark.dagster_ui
@pytest.mark.timeout(900)
@pytest.mark.parametrize("dagster_dev", [None], indirect=True)  # the README's 1,000 orders
def test_browser_backfill_of_a_week(dagster_dev: DagsterDev, tmp_path: Path) -> None:
    """Chromium: select the assets, pick 2024-05-01…07, Launch backfill; numbers are per day."""
    _launch_week_backfill_in_the_browser(dagster_dev.url, tmp_path)
    backfill = _wait_for_backfill(dagster_dev)
    assert backfill["status"] == "COMPLETED_SUCCESS", (backfill, dagster_dev.tail())
    assert backfill["numPartitions"] == 7
    assert all(run["status"] == "SUCCESS" for run in backfill["runs"]), backfill["runs"]

    counts = _warehouse_day_counts(dagster_dev.home / "rc-sync-sandbox.db")
    assert sum(counts["orders"].values()) > 0, "the week should hold orders"
    for table in TABLES:
        seen = _latest_per_partition(dagster_dev, table)
        assert sorted(seen) == [d.isoformat() for d in WEEK], (table, sorted(seen))
        for day, want in counts[table].items():
            # One materialization per day with that day's own rows, and what it wrote (a
            # fresh warehouse: everything of the day was inserted by this backfill).
            assert seen[day]["dagster/row_count"] == want, (table, day, seen[day], want)
            assert seen[day]["rows_inserted"] == want, (table, day, seen[day], want)
        print(f"{table} per day: {counts[table]}")

    with sqlite3.connect(dagster_dev.home / "rc-sync-sandbox.db") as conn:
        for view in ("order_lines", "daily_order_summary"):
            (rows,) = conn.execute(f"SELECT count(*) FROM {view}").fetchone()
            found = dagster_dev.query(
                MATERIALIZATIONS, {"key": {"path": ["readycloud", view]}, "partitions": None}
            )["assetOrError"]["assetMaterializations"]
            assert found, f"{view} was not materialized by the backfill"
            assert found[0]["metadataEntries"][0]["intValue"] == rows

    for table in TABLES:
        checks = dagster_dev.query(CHECKS, {"key": {"path": ["readycloud", table]}})[
            "assetNodeOrError"
        ]["assetChecksOrError"]["checks"]
        assert checks, table
        for check in checks:
            execution = check["executionForLatestMaterialization"]
            assert execution is not None, (table, check["name"], "did not run")
            assert execution["status"] == "SUCCEEDED", (table, check)
            assert execution["evaluation"]["success"], (table, check)
