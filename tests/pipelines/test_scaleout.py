"""Scale-out, proven: the code location on Dagster's Celery executor with a PostgreSQL instance.

Each test starts its own webserver, daemon and Celery worker(s) -- each in its own process
group, stopped by the group's id -- on a Dagster instance built from docs/dagster/dagster.yaml
(in a fresh PostgreSQL database), workers configured by docs/dagster/celery-worker.yaml, a Redis
database index of its own as the broker, a sandbox with latency as ReadyCloud and a PostgreSQL
schema as the warehouse. Mandatory in CI; skipped with the reason elsewhere when no Redis
answers. Wall and recovery times are printed (`-s`), not asserted.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from pipelines_support import assert_matches_sandbox, busiest_days, sandbox_config, window
from scaleout_support import (
    Cluster,
    celery_workers_by_step,
    cluster_env,
    dagster_database,
    days_recorded,
    engine_runs,
    migrate_warehouse,
    new_cluster,
    pool_in_use,
    redis_database,
    resume_keys,
    steps_started,
    worker_hostname,
    worker_yaml,
)
from support.expected import expected_rows

pytestmark = [pytest.mark.scaleout, pytest.mark.postgres]

TERMINAL_BACKFILL = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


@pytest.fixture
def broker_url() -> Iterator[str]:
    """A Redis database index of this test's own (the Celery broker and result backend)."""
    with redis_database() as url:
        yield url


@pytest.fixture
def dagster_pg_url(pg_admin_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh PostgreSQL database for the Dagster instance (also readable by the test)."""
    with dagster_database(pg_admin_url) as url:
        monkeypatch.setenv("DAGSTER_PG_URL", url)
        yield url


@pytest.fixture
def slow_sandbox() -> Iterator[Any]:
    """This test's own sandbox: 600 orders in 2 orgs, 40 ms per request (knobs may change).

    A seed of its own gives org pks of its own, so nothing this test reads or locks is shared
    with other tests (rc-sync's advisory locks are keyed by schema and org anyway).
    """
    from rc_sandbox import SandboxServer

    seed = random.randrange(1_000, 1_000_000)
    with SandboxServer(sandbox_config(latency_ms=40, seed=seed)) as server:
        yield server


@pytest.fixture
def cluster(
    tmp_path: Path, dagster_pg_url: str, broker_url: str, slow_sandbox: Any, pg_target: Any
) -> Iterator[Cluster]:
    """The instance, a migrated warehouse and the environment; processes are started by tests."""
    env = cluster_env(
        tmp_path / "dagster_home",
        dagster_pg_url=dagster_pg_url,
        broker_url=broker_url,
        sandbox=slow_sandbox,
        target=pg_target,
    )
    migrate_warehouse(env)
    cluster = new_cluster(tmp_path / "dagster_home", env)
    try:
        yield cluster
    finally:
        problems = cluster.stop_all()
    assert not problems, f"{problems}\n{cluster.tails()}"


def _days(sandbox: Any, n: int) -> list[date]:
    """`n` consecutive days starting a few days before the sandbox's busiest day."""
    (busiest,) = busiest_days(sandbox)
    first = busiest - timedelta(days=min(3, n - 1))
    return [first + timedelta(days=i) for i in range(n)]


def _start(cluster: Cluster, worker: str, *, acks_late: bool, visibility_timeout: int) -> None:
    cluster.start_webserver()
    cluster.start_daemon()
    cluster.start_worker(
        worker, worker_yaml(acks_late=acks_late, visibility_timeout=visibility_timeout)
    )
    cluster.wait_loaded()


def _wait_backfill(cluster: Cluster, instance: Any, backfill_id: str, timeout: float) -> str:
    def done() -> str | None:
        backfill = instance.get_backfill(backfill_id)
        status = backfill.status.value if backfill else None
        return status if status in TERMINAL_BACKFILL else None

    return str(cluster.wait_for(f"backfill {backfill_id}", done, timeout))


def _assert_pool_free(cluster: Cluster, instance: Any) -> None:
    cluster.wait_for(
        "the readycloud_api pool to be free", lambda: pool_in_use(instance) == (0, 0), 60
    )


@pytest.mark.parametrize(
    "executor",
    # `default` is the same backfill on Dagster's default executor, for the wall-time
    # comparison in the README (not run by default: -m slow).
    ["celery", pytest.param("default", marks=pytest.mark.slow)],
)
def test_backfill_on_celery_workers(
    cluster: Cluster, slow_sandbox: Any, pg_target: Any, executor: str, request: Any
) -> None:
    """A 30-day UI backfill: one successful run, every step on the worker, warehouse = sandbox."""
    slow_asked = "slow" in (request.config.getoption("markexpr") or "")
    if executor != "celery" and not (slow_asked or os.environ.get("RC_SYNC_SLOW_TESTS") == "1"):
        pytest.skip("comparison run: -m slow or RC_SYNC_SLOW_TESTS=1")
    worker = "rc-sync-happy"
    if executor == "celery":
        _start(cluster, worker, acks_late=True, visibility_timeout=600)
    else:
        cluster.env["RC_SYNC_DAGSTER_EXECUTOR"] = executor
        cluster.start_webserver()
        cluster.start_daemon()
        cluster.wait_loaded()
    days = _days(slow_sandbox, 30)
    started = time.monotonic()
    backfill_id = cluster.launch_backfill(days)
    instance = cluster.instance()
    status = _wait_backfill(cluster, instance, backfill_id, 240)
    elapsed = time.monotonic() - started

    runs = cluster.backfill_runs(instance, backfill_id)
    assert status in {"COMPLETED", "COMPLETED_SUCCESS"}, (status, runs, cluster.tails())
    assert [r.status.value for r in runs] == ["SUCCESS"], cluster.tails()  # single_run policy
    run_id = runs[0].run_id
    steps = steps_started(instance, run_id)
    workers = celery_workers_by_step(instance, run_id)
    assert steps, "the run started no step"
    if executor == "celery":
        assert {s: workers.get(s) for s in steps} == {s: [worker_hostname(worker)] for s in steps}
    else:
        assert workers == {}
    _assert_pool_free(cluster, instance)

    since, until = window(days[0], days[-1])
    assert_matches_sandbox(pg_target, expected_rows(slow_sandbox.store, since=since, until=until))
    record = instance.get_run_record_by_id(run_id)
    assert cluster.env["RC_SYNC_CELERY_BROKER_URL"] not in str(record.dagster_run.run_config)
    print(
        f"\n[scaleout] {executor} executor, {len(days)}-day backfill ({len(steps)} steps): run "
        f"{record.end_time - record.start_time:.1f}s, backfill launch->completed {elapsed:.1f}s"
    )


@pytest.mark.parametrize("safety_net", ["acks_late", "max_runtime"])
def test_killed_worker_is_recovered(
    cluster: Cluster, slow_sandbox: Any, pg_target: Any, safety_net: str
) -> None:
    """SIGKILL the whole worker mid-backfill and restart it: the backfill completes, resumed.

    acks_late: the worker acknowledges a step's task when it ends, so the broker hands the
    unacknowledged task to the new worker (after Redis's visibility timeout) and the step runs
    again in the same run. max_runtime: Celery's default (ack on receipt) loses the task; run
    monitoring fails the run after its `dagster/max_runtime`, frees its pool slot, and the
    instance's run retry resumes it.
    """
    acks_late = safety_net == "acks_late"
    slow_sandbox.config.update(latency_ms=100)
    # A backfill reads its consecutive days as one window: pages of one order, one at a
    # time, make the step long enough to be killed in the middle (days are recorded as the
    # pages pass them).
    cluster.env.update(RC_SYNC_PAGE_SIZE="1", RC_SYNC_CONCURRENCY="1")
    visibility = 45  # longer than the sync step takes here, shorter than the test
    _start(cluster, "rc-sync-doomed", acks_late=acks_late, visibility_timeout=visibility)
    days = _days(slow_sandbox, 60)
    tags = {} if acks_late else {"dagster/max_runtime": "60"}
    backfill_id = cluster.launch_backfill(days, tags)
    instance = cluster.instance()

    done_before = cluster.wait_for(
        "the worker to finish some days", lambda: days_recorded(pg_target) >= 10, 240, 0.2
    )
    cluster.kill("rc-sync-doomed")
    killed = time.monotonic()
    slow_sandbox.config.update(latency_ms=0)  # latency only made the kill land mid-step
    done_at_kill = days_recorded(pg_target)
    assert done_at_kill < 2 * len(days), "the step finished before the kill: make it longer"
    cluster.start_worker(
        "rc-sync-spare", worker_yaml(acks_late=acks_late, visibility_timeout=visibility)
    )
    status = _wait_backfill(cluster, instance, backfill_id, 300)
    recovered = time.monotonic() - killed

    runs = cluster.backfill_runs(instance, backfill_id)
    assert status in {"COMPLETED", "COMPLETED_SUCCESS"}, (status, runs, cluster.tails())
    # The workers of the sync step in the last run that executed it (a retry cut short by its
    # own maximum runtime after the step succeeded is retried from failure: checks only).
    executed = [celery_workers_by_step(instance, r.run_id).get("readycloud_sync") for r in runs]
    sync_workers = [w for w in executed if w][-1]
    if acks_late:  # the same run, its step redelivered to the new worker
        assert [r.status.value for r in runs] == ["SUCCESS"], cluster.tails()
        assert sync_workers == [worker_hostname("rc-sync-doomed"), worker_hostname("rc-sync-spare")]
    else:  # the run failed at its maximum runtime; its automatic retry finished the work
        # (a retry slowed down past its own maximum runtime fails and is retried again)
        statuses = [r.status.value for r in runs]
        assert len(runs) >= 2 and set(statuses[:-1]) == {"FAILURE"}, cluster.tails()
        assert statuses[-1] == "SUCCESS", cluster.tails()
        assert runs[-1].tags.get("dagster/root_run_id") == runs[0].run_id
        assert sync_workers == [worker_hostname("rc-sync-spare")]

    last = [r for r in engine_runs(pg_target) if r["kind"] == "backfill"][-1]
    assert last["status"] == "success", engine_runs(pg_target)
    assert last["days_resumed"] >= done_at_kill > 0, (last, done_at_kill, done_before)
    assert last["days_resumed"] + last["days_done"] == 2 * len(days)  # 2 orgs
    assert resume_keys(pg_target) == {f"dagster-backfill:{backfill_id}"}
    _assert_pool_free(cluster, instance)
    since, until = window(days[0], days[-1])
    assert_matches_sandbox(pg_target, expected_rows(slow_sandbox.store, since=since, until=until))
    print(
        f"\n[scaleout] {safety_net}: worker killed after {done_at_kill} of {2 * len(days)} "
        f"org-days; backfill completed {recovered:.1f}s after the kill "
        f"({last['days_resumed']} resumed, {last['days_done']} re-read)"
    )


def test_reexecution_from_failure_resumes(
    cluster: Cluster, slow_sandbox: Any, pg_target: Any
) -> None:
    """A backfill run that failed half-way, re-executed from failure in the UI, resumes."""
    slow_sandbox.config.update(fail_auth_after=20)  # the token "expires" after 20 requests
    # Pages of one order, so that 20 requests end the one-window read of the days half-way.
    cluster.env.update(RC_SYNC_PAGE_SIZE="1", RC_SYNC_CONCURRENCY="1")
    _start(cluster, "rc-sync-reexec", acks_late=True, visibility_timeout=600)
    days = _days(slow_sandbox, 30)
    backfill_id = cluster.launch_backfill(days)
    instance = cluster.instance()
    _wait_backfill(cluster, instance, backfill_id, 240)
    (failed,) = cluster.backfill_runs(instance, backfill_id)
    assert failed.status.value == "FAILURE", cluster.tails()
    done_before = days_recorded(pg_target)
    assert 0 < done_before < 2 * len(days)

    slow_sandbox.config.update(fail_auth_after=None)  # the operator fixed the token
    run_id = cluster.reexecute_from_failure(failed.run_id)
    record = cluster.wait_run(instance, run_id, 240)
    assert record.dagster_run.status.value == "SUCCESS", cluster.tails()
    # Dagster does not copy the backfill id to a re-execution: the key comes from the lineage.
    assert "dagster/backfill" not in record.dagster_run.tags
    last = [r for r in engine_runs(pg_target) if r["kind"] == "backfill"][-1]
    assert last["status"] == "success"
    assert last["days_resumed"] == done_before, (last, done_before)
    assert resume_keys(pg_target) == {f"dagster-backfill:{backfill_id}"}
    since, until = window(days[0], days[-1])
    assert_matches_sandbox(pg_target, expected_rows(slow_sandbox.store, since=since, until=until))
