"""A real UI backfill: `dagster dev` in sandbox mode, launched through the UI's GraphQL mutation."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from pipelines_support import (
    REPO,
    SANDBOX_ORDERS,
    assert_matches_sandbox,
    busiest_days,
    clean_environ,
    free_port,
    sandbox_config,
    window,
)

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
def dagster_dev(tmp_path: Path) -> Iterator[DagsterDev]:
    """`dagster dev -w workspace.yaml` with RC_SANDBOX=1, its own DAGSTER_HOME and ports."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    port, sandbox_port = free_port(), free_port()
    env = clean_environ(
        DAGSTER_HOME=str(home),
        RC_SANDBOX="1",
        RC_SANDBOX_PORT=str(sandbox_port),
        RC_SANDBOX_ORDERS=str(SANDBOX_ORDERS),
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
        Target(f"sqlite:///{warehouse}"), reference.store.expected_rows(since=since, until=until)
    )
