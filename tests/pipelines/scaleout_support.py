"""Harness of the scale-out tests: a Redis database of their own, a PostgreSQL Dagster instance
built from docs/dagster/, and the webserver, daemon and Celery workers in process groups."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import yaml
from pipelines_support import REPO, clean_environ, free_port

BIN = REPO / ".venv" / "bin"
DOCS = REPO / "docs" / "dagster"
REDIS_URL_ENV = "RC_SYNC_TEST_REDIS_URL"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379"
POOL = "readycloud_api"
TABLES = ("orders", "boxes", "items", "addresses")
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}

LOCATIONS = """
{ workspaceOrError { __typename ... on Workspace { locationEntries {
    name loadStatus
    locationOrLoadError { __typename ... on PythonError { message } }
} } } }
"""

# The mutation the UI's "Materialize selected partitions" dialog sends for an asset backfill.
LAUNCH_BACKFILL = """
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

# The mutation of the run page's "Re-execute → From failure" button.
REEXECUTE = """
mutation Reexecute($params: ReexecutionParams!) {
  launchRunReexecution(reexecutionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message stack }
    ... on InvalidSubsetError { message }
    ... on RunConflict { message }
  }
}
"""


def scaleout_mandatory() -> bool:
    """True in CI: the scale-out tests fail instead of skipping when Redis does not answer."""
    return os.environ.get("RC_SYNC_REQUIRE_POSTGRES") == "1" or bool(os.environ.get("CI"))


def redis_base_url() -> str:
    """The Redis server of the tests (RC_SYNC_TEST_REDIS_URL), without a database index."""
    return os.environ.get(REDIS_URL_ENV, DEFAULT_REDIS_URL).rstrip("/")


@contextmanager
def redis_database() -> Iterator[str]:
    """A Redis database index no other test uses right now, flushed afterwards: its URL.

    dagster-celery always routes steps to the queue `dagster`, so two test runs sharing a
    database would take each other's tasks; each claims a free index with a lock key.
    """
    import redis

    base = redis_base_url()
    try:
        redis.Redis.from_url(f"{base}/0", socket_connect_timeout=3).ping()
    except Exception as exc:
        reason = f"no Redis broker answers at {base} ({type(exc).__name__}: {exc})"
        if scaleout_mandatory():
            pytest.fail(reason + "; the scale-out tests are mandatory in CI", pytrace=False)
        pytest.skip(reason)
    token = uuid.uuid4().hex
    for index in random.sample(range(1, 16), 15):
        client = redis.Redis.from_url(f"{base}/{index}")
        if client.set("rc_sync_test_lock", token, nx=True, ex=1800) and client.dbsize() == 1:
            try:
                yield f"{base}/{index}"
            finally:
                client.flushdb()
                client.close()
            return
        if client.get("rc_sync_test_lock") == token.encode():
            client.delete("rc_sync_test_lock")  # a database with leftovers: leave it alone
        client.close()
    pytest.fail("no free Redis database index (1-15) for this test", pytrace=False)


@contextmanager
def dagster_database(admin_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database for the Dagster instance: its postgresql+psycopg2:// URL."""
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    name = f"dagster_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin_url).set(drivername="postgresql+psycopg2", database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def instance_yaml(**run_monitoring: int) -> str:
    """docs/dagster/dagster.yaml with the test's shorter polling intervals."""
    config = yaml.safe_load((DOCS / "dagster.yaml").read_text())
    config["run_monitoring"].update(
        {"poll_interval_seconds": 2, "free_slots_after_run_end_seconds": 5, **run_monitoring}
    )
    config["run_coordinator"]["config"] = {"dequeue_interval_seconds": 1}
    return yaml.safe_dump(config)


def worker_yaml(*, acks_late: bool, visibility_timeout: int) -> str:
    """docs/dagster/celery-worker.yaml; `acks_late=False` is Celery's default (ack on receipt)."""
    config = yaml.safe_load((DOCS / "celery-worker.yaml").read_text())
    source = config["execution"]["config"]["config_source"]
    source["task_acks_late"] = acks_late
    source["task_reject_on_worker_lost"] = acks_late
    source["broker_transport_options"].update(
        {"visibility_timeout": visibility_timeout, "unacked_restore_interval": 1}
    )
    return yaml.safe_dump(config)


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


@dataclass
class Group:
    """One started command in its own process group (session), stopped by the group's id."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pgid(self) -> int:
        return self.process.pid  # start_new_session=True: the group id is the leader's pid

    def members(self) -> list[psutil.Process]:
        return _group_members(self.pgid)

    def kill(self) -> None:
        """SIGKILL every process of the group at once (a crash, not a shutdown)."""
        with suppress(ProcessLookupError):
            os.killpg(self.pgid, signal.SIGKILL)
        self._wait_gone(10.0)

    def terminate(self) -> None:
        """SIGTERM the whole group (a shutdown: Celery finishes its task, Dagster cleans up)."""
        with suppress(ProcessLookupError):
            os.killpg(self.pgid, signal.SIGTERM)

    def stop(self, grace: float = 60.0) -> bool:
        """SIGTERM the group, SIGKILL what is left after `grace`; True if SIGTERM sufficed."""
        self.terminate()
        if self._wait_gone(grace):
            return True
        self.kill()
        return False

    def _wait_gone(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.process.poll()
            if not self.members():
                return True
            time.sleep(0.3)
        return False

    def tail(self, chars: int = 4000) -> str:
        return f"--- {self.name} ---\n" + self.log.read_text(errors="replace")[-chars:]


@dataclass
class Cluster:
    """A PostgreSQL Dagster instance with its webserver, daemon and Celery workers."""

    home: Path
    env: dict[str, str]
    port: int
    groups: dict[str, Group] = field(default_factory=dict)
    stopped: list[Group] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- processes -----------------------------------------------------------------------

    def _start(self, name: str, argv: list[str]) -> Group:
        log = self.home / f"{name}.log"
        with log.open("ab") as sink:
            process = subprocess.Popen(
                argv,
                cwd=REPO,
                env=self.env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        group = Group(name, process, log)
        self.groups[name] = group
        return group

    def start_webserver(self) -> Group:
        argv = [str(BIN / "dagster-webserver"), "-w", "workspace.yaml"]
        return self._start("webserver", [*argv, "-h", "127.0.0.1", "-p", str(self.port)])

    def start_daemon(self) -> Group:
        return self._start("daemon", [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"])

    def start_worker(self, name: str, config_yaml: str) -> Group:
        """A Celery worker named `name@<host>` (dagster-celery adds the host) started the documented way (celery-worker.yaml)."""
        config = self.home / f"{name}.yaml"
        config.write_text(config_yaml)
        argv = [str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app"]
        return self._start(name, [*argv, "-y", str(config), "-q", "dagster", "-n", name])

    def kill(self, name: str) -> None:
        """SIGKILL one group (a dead worker) and forget it."""
        group = self.groups.pop(name)
        group.kill()
        self.stopped.append(group)

    def stop_all(self, grace: float = 60.0) -> list[str]:
        """Stop every group (SIGTERM to all, then SIGKILL after `grace`): what went wrong."""
        problems = []
        for group in self.groups.values():
            group.terminate()
        for name, group in list(self.groups.items()):
            if not group.stop(grace):
                problems.append(f"{name} did not stop on SIGTERM within {grace:.0f}s")
            self.stopped.append(self.groups.pop(name))
        problems += [f"{g.name} left {g.members()}" for g in self.stopped if g.members()]
        return problems

    def tails(self) -> str:
        return "\n".join(g.tail() for g in [*self.groups.values(), *self.stopped])

    # -- the instance and the UI's API ---------------------------------------------------------

    def instance(self) -> Any:
        """The Dagster instance, opened from the same dagster.yaml as the processes."""
        import dagster as dg

        return dg.DagsterInstance.from_config(str(self.home))

    def query(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """POST one GraphQL document to the webserver; return its data or fail with its errors."""
        response = httpx.post(
            f"{self.url}/graphql", json={"query": query, "variables": variables or {}}, timeout=60
        )
        response.raise_for_status()
        body = response.json()
        assert not body.get("errors"), body["errors"]
        return dict(body["data"])

    def wait_loaded(self, timeout: float = 180) -> None:
        """Until the webserver answers and the code location is loaded (fail on load errors)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for group in self.groups.values():
                assert group.process.poll() is None, f"{group.name} exited:\n{self.tails()}"
            try:
                entries = self.query(LOCATIONS)["workspaceOrError"]["locationEntries"]
            except (httpx.HTTPError, KeyError):
                time.sleep(1)
                continue
            if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                errors = [
                    e for e in entries if e["locationOrLoadError"]["__typename"] == "PythonError"
                ]
                assert not errors, errors
                return
            time.sleep(1)
        pytest.fail(f"the code location did not load in {timeout}s:\n{self.tails()}")

    def launch_backfill(self, days: list[date], tags: dict[str, str] | None = None) -> str:
        """A backfill of the four tables over `days`, launched the way the UI does: its id."""
        launched = self.query(
            LAUNCH_BACKFILL,
            {
                "backfillParams": {
                    "assetSelection": [{"path": ["readycloud", t]} for t in TABLES],
                    "partitionNames": [d.isoformat() for d in days],
                    "fromFailure": False,
                    "tags": [{"key": k, "value": v} for k, v in (tags or {}).items()],
                }
            },
        )["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        return str(launched["backfillId"])

    def reexecute_from_failure(self, run_id: str) -> str:
        """The run page's "Re-execute from failure": the new run's id."""
        result = self.query(
            REEXECUTE, {"params": {"parentRunId": run_id, "strategy": "FROM_FAILURE"}}
        )["launchRunReexecution"]
        assert result["__typename"] == "LaunchRunSuccess", result
        return str(result["run"]["runId"])

    def backfill_runs(self, instance: Any, backfill_id: str) -> list[Any]:
        """The runs of a backfill, oldest first."""
        import dagster as dg

        runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        return sorted(runs, key=lambda r: instance.get_run_record_by_id(r.run_id).create_timestamp)

    def wait_for(self, what: str, predicate: Any, timeout: float, interval: float = 1.0) -> Any:
        """Poll `predicate` until it returns something truthy; fail with the logs after `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(interval)
        pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}:\n{self.tails()}")

    def wait_run(self, instance: Any, run_id: str, timeout: float) -> Any:
        """The run record once the run has finished."""

        def finished() -> Any:
            record = instance.get_run_record_by_id(run_id)
            return record if record and record.dagster_run.status.value in FINISHED else None

        return self.wait_for(f"run {run_id} to finish", finished, timeout)


def cluster_env(
    home: Path, *, dagster_pg_url: str, broker_url: str, sandbox: Any, target: Any
) -> dict[str, str]:
    """The environment of every process: instance, code location settings, Celery broker."""
    return clean_environ(
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # dagster-celery runs `celery`
        DAGSTER_HOME=str(home),
        DAGSTER_PG_URL=dagster_pg_url,
        READYCLOUD_BASE_URL=str(sandbox.base_url),
        READYCLOUD_API_TOKEN=str(sandbox.token),
        WAREHOUSE_URL=target.url,
        WAREHOUSE_SCHEMA=target.schema,
        RC_SYNC_DAGSTER_EXECUTOR="celery",
        RC_SYNC_CELERY_BROKER_URL=broker_url,
        PYTHONUNBUFFERED="1",
    )


def new_cluster(home: Path, env: dict[str, str], **run_monitoring: int) -> Cluster:
    """DAGSTER_HOME with the documented dagster.yaml (test timings) and a free port."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(instance_yaml(**run_monitoring))
    return Cluster(home=home, env=env, port=free_port())


def worker_hostname(name: str) -> str:
    """The Celery node name of a worker started with `-n name`."""
    return f"{name}@{socket.gethostname()}"


def celery_workers_by_step(instance: Any, run_id: str) -> dict[str, list[str]]:
    """For each step of a run, the Celery workers that reported executing it (in order)."""
    from dagster import DagsterEventType

    workers: dict[str, list[str]] = {}
    for record in instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
        event = record.dagster_event
        data = event.engine_event_data if event else None
        worker = data.metadata.get("Celery worker") if data else None
        if worker is not None and event is not None and event.step_key:
            workers.setdefault(event.step_key, []).append(str(worker.value))
    return workers


def steps_started(instance: Any, run_id: str) -> set[str]:
    """The step keys a run started."""
    from dagster import DagsterEventType

    return {
        r.dagster_event.step_key
        for r in instance.all_logs(run_id, of_type=DagsterEventType.STEP_START)
        if r.dagster_event is not None and r.dagster_event.step_key
    }


def pool_in_use(instance: Any) -> tuple[int, int]:
    """(claimed slots, pending steps) of the `readycloud_api` pool."""
    info = instance.event_log_storage.get_concurrency_info(POOL)
    return len(info.claimed_slots), len(info.pending_steps)


def migrate_warehouse(env: dict[str, str]) -> None:
    """`rc-sync migrate` on the test warehouse, as an operator would before the first run."""
    result = subprocess.run(
        [str(BIN / "rc-sync"), "migrate"], env=env, cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _warehouse_rows(target: Any, sql: str) -> list[Any]:
    import sqlalchemy as sa

    engine = sa.create_engine(target.url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(sql.format(schema=target.schema))))
    finally:
        engine.dispose()


def days_recorded(target: Any) -> int:
    """Org-days of backfills recorded as done in the warehouse (backfill_progress)."""
    return int(_warehouse_rows(target, 'SELECT count(*) FROM "{schema}".backfill_progress')[0][0])


def resume_keys(target: Any) -> set[str]:
    """The distinct resume keys in backfill_progress."""
    return {
        r[0]
        for r in _warehouse_rows(target, 'SELECT DISTINCT key FROM "{schema}".backfill_progress')
    }


def engine_runs(target: Any) -> list[dict[str, Any]]:
    """rc-sync's own run log (sync_runs): kind, status, days done and days resumed per run."""
    rows = _warehouse_rows(
        target, 'SELECT id, kind, status, counts FROM "{schema}".sync_runs ORDER BY id'
    )
    out = []
    for run_id, kind, status, counts in rows:
        orgs = (counts or {}).get("orgs", [])
        out.append(
            {
                "id": run_id,
                "kind": kind,
                "status": status,
                "days_done": sum(o.get("days_done", 0) for o in orgs),
                "days_resumed": sum(o.get("days_skipped", 0) for o in orgs),
            }
        )
    return out
