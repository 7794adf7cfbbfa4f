"""Schedule evaluation: the refresh asks for today's partition on the incremental path."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime

import dagster as dg
from pipelines_support import REPO, clean_environ


def _evaluate(schedule: dg.ScheduleDefinition, when: datetime) -> list[dg.RunRequest]:
    from pipelines.definitions import defs

    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=when,
            repository_def=defs.get_repository_def(),
        )
        result = schedule.evaluate_tick(context)
    assert not result.skip_message, result.skip_message
    return list(result.run_requests or [])


def test_refresh_requests_todays_partition_incrementally() -> None:
    """One run request: the current UTC day's partition, tagged rc_sync/mode=incremental."""
    from pipelines.definitions import defs

    schedule = defs.resolve_schedule_def("readycloud_refresh")
    assert schedule.cron_schedule == "*/15 * * * *"
    assert schedule.job_name == "readycloud_refresh_job"
    (request,) = _evaluate(schedule, datetime(2024, 5, 3, 23, 45, tzinfo=UTC))
    assert request.partition_key == "2024-05-03"
    assert request.tags["rc_sync/mode"] == "incremental"
    job = defs.resolve_job_def("readycloud_refresh_job")
    assert job.tags.get("rc_sync/mode") == "incremental"
    selected = {k.to_user_string() for k in job.asset_layer.executable_asset_keys}
    assert {"readycloud/orders", "readycloud/order_lines"} <= selected


def test_refresh_just_after_midnight_targets_the_new_day() -> None:
    """At 00:00 UTC the new day's partition exists already (end_offset=1)."""
    from pipelines.definitions import defs

    schedule = defs.resolve_schedule_def("readycloud_refresh")
    (request,) = _evaluate(schedule, datetime(2024, 5, 4, 0, 0, tzinfo=UTC))
    assert request.partition_key == "2024-05-04"


def test_reconcile_schedule_runs_the_reconcile_job() -> None:
    """Once a day, one plain run of readycloud_reconcile."""
    from pipelines.definitions import defs

    schedule = defs.resolve_schedule_def("readycloud_reconcile_daily")
    assert schedule.job_name == "readycloud_reconcile"
    assert schedule.cron_schedule == "30 2 * * *"
    (request,) = _evaluate(schedule, datetime(2024, 5, 4, 2, 30, tzinfo=UTC))
    assert request.partition_key is None


def test_crons_and_default_status_come_from_the_environment() -> None:
    """RC_SYNC_REFRESH_CRON, RC_SYNC_RECONCILE_CRON and RC_SYNC_SCHEDULES_ON are honoured."""
    probe = (
        "import json; from pipelines.definitions import defs\n"
        "r = defs.resolve_schedule_def('readycloud_refresh')\n"
        "c = defs.resolve_schedule_def('readycloud_reconcile_daily')\n"
        "print(json.dumps([r.cron_schedule, c.cron_schedule, r.default_status.value]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=REPO,
        env=clean_environ(
            RC_SYNC_REFRESH_CRON="*/5 * * * *",
            RC_SYNC_RECONCILE_CRON="0 4 * * *",
            RC_SYNC_SCHEDULES_ON="1",
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [
        "*/5 * * * *",
        "0 4 * * *",
        "RUNNING",
    ]
