"""The code location loads, with and without configuration, and has the contract's shape."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import dagster as dg
import pytest
from pipelines_support import REPO, clean_environ

TABLES = ("orders", "boxes", "items", "addresses")
VIEWS = ("order_lines", "daily_order_summary")

# Loads the code location in a fresh interpreter and prints what a user would see in the UI.
PROBE = r"""
import json
import dagster as dg
from pipelines.definitions import defs

dg.Definitions.validate_loadable(defs)
graph = defs.resolve_asset_graph()
resource = defs.resources["rc_sync"]
orders = graph.get(dg.AssetKey(["readycloud", "orders"]))
columns = {c.name: c.type for c in orders.metadata["dagster/column_schema"].columns}
print(json.dumps({
    "assets": sorted(k.to_user_string() for k in graph.get_all_asset_keys()),
    "start": graph.get(dg.AssetKey(["readycloud", "orders"])).partitions_def.start.date().isoformat(),
    "refresh_cron": defs.resolve_schedule_def("readycloud_refresh").cron_schedule,
    "token_repr": repr(resource.api_token),
    "base_url": repr(resource.base_url),
    "sandbox": resource.sandbox,
    "raw_type": columns["raw"],
    "table_name": orders.metadata["dagster/table_name"],
    "storage": orders.metadata["rc_sync/storage"],
    "kinds": sorted(orders.kinds),
}))
"""


def _probe(**env: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=REPO,
        env=clean_environ(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def test_loads_without_any_environment() -> None:
    """No READYCLOUD_*/WAREHOUSE_* at all: the code location still loads."""
    seen = _probe()
    assert seen["assets"] == sorted(f"readycloud/{n}" for n in TABLES + VIEWS)
    assert seen["start"] == "2020-01-01"
    assert seen["refresh_cron"] == "*/15 * * * *"
    assert seen["token_repr"] == "None"
    assert seen["sandbox"] is False
    # The embedded default: SQLite's own column types, and the database named.
    assert seen["raw_type"] == "json" and seen["kinds"] == ["python", "sqlite"]
    assert seen["table_name"] == "main.orders"
    assert seen["storage"] == "sqlite: sqlite:///readycloud.db"


def test_column_types_and_storage_follow_the_configured_warehouse() -> None:
    """A PostgreSQL warehouse shows PostgreSQL types and its database, never the password."""
    seen = _probe(
        WAREHOUSE_URL="postgresql://rc:hunter2@db.example.test/analytics",
        WAREHOUSE_SCHEMA="rc",
    )
    assert seen["raw_type"] == "jsonb" and seen["kinds"] == ["postgres", "python"]
    assert seen["table_name"] == "analytics.rc.orders"
    assert "hunter2" not in seen["storage"] and "db.example.test/analytics" in seen["storage"]


def test_loads_with_environment_and_keeps_the_token_out_of_config() -> None:
    """With the variables set, values come from them and the token stays an EnvVar reference."""
    seen = _probe(
        READYCLOUD_API_TOKEN="tok-very-secret-123",
        READYCLOUD_BASE_URL="https://rc.example.test",
        RC_SYNC_START_DATE="2023-06-01",
        RC_SYNC_REFRESH_CRON="*/5 * * * *",
    )
    assert seen["start"] == "2023-06-01"
    assert seen["refresh_cron"] == "*/5 * * * *"
    assert "READYCLOUD_BASE_URL" in seen["base_url"]
    assert "tok-very-secret-123" not in seen["token_repr"]
    assert "READYCLOUD_API_TOKEN" in seen["token_repr"]


def test_shape_of_the_assets() -> None:
    """Keys, group, partitions, backfill policy, pool, retries, descriptions, column schemas."""
    from pipelines.assets import readycloud_sync, readycloud_views
    from pipelines.definitions import defs

    graph = defs.resolve_asset_graph()
    for name in TABLES:
        node = graph.get(dg.AssetKey(["readycloud", name]))
        assert node.group_name == "readycloud"
        part = node.partitions_def
        assert isinstance(part, dg.DailyPartitionsDefinition)
        assert part.timezone == "UTC" and part.end_offset == 1
        assert node.backfill_policy == dg.BackfillPolicy.single_run()
        assert node.description and "\n" not in node.description
        schema = node.metadata["dagster/column_schema"]
        assert {"org_pk", "order_pk"} <= {c.name for c in schema.columns}
    for name in VIEWS:
        node = graph.get(dg.AssetKey(["readycloud", name]))
        assert node.partitions_def is None and node.description
        assert graph.get_parents(node) if hasattr(graph, "get_parents") else True
    assert readycloud_sync.op.pool == "readycloud_api"
    policy = readycloud_sync.op.retry_policy
    assert policy is not None and policy.backoff == dg.Backoff.EXPONENTIAL and policy.jitter
    assert readycloud_views.op.pool is None
    lineage = graph.get(dg.AssetKey(["readycloud", "order_lines"])).parent_keys
    assert {dg.AssetKey(["readycloud", t]) for t in TABLES} == set(lineage)


def test_checks_jobs_and_schedules_are_declared() -> None:
    """Blocking ERROR checks on keys and orphans; refresh and reconcile jobs and schedules."""
    from pipelines.definitions import defs

    graph = defs.resolve_asset_graph()
    checks = {
        (k.asset_key.path[-1], k.name): graph.get_check_spec(k) for k in graph.asset_check_keys
    }
    for table in TABLES:
        assert checks[(table, "unique_keys")].blocking
    for table in ("boxes", "items", "addresses"):
        assert checks[(table, "no_orphans")].blocking
    assert ("orders", "row_count_matches_api") in checks
    assert ("orders", "watermark_fresh") in checks
    assert ("orders", "normalization_current") in checks
    assert ("orders", "no_new_load_issues") in checks
    for spec in checks.values():
        assert spec.description
    assert defs.resolve_job_def("readycloud_reconcile").description
    assert defs.resolve_job_def("readycloud_rebuild").description
    assert defs.resolve_job_def("readycloud_refresh_job").description
    assert defs.resolve_schedule_def("readycloud_reconcile_daily").description
    refresh = defs.resolve_schedule_def("readycloud_refresh")
    assert refresh.description and refresh.execution_timezone == "UTC"


def test_a_run_without_a_token_fails_saying_what_to_set(tmp_path: Any) -> None:
    """No token anywhere: the run fails (not retried) with the variables to set."""
    from pipelines.assets import readycloud_sync
    from pipelines.resources import RcSyncResource

    result = dg.materialize(
        [readycloud_sync],
        partition_key="2024-05-01",
        resources={
            "rc_sync": RcSyncResource(
                base_url="http://127.0.0.1:9", warehouse_url=f"sqlite:///{tmp_path / 'w.db'}"
            )
        },
        raise_on_error=False,
    )
    assert not result.success
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert len(failures) == 1  # allow_retries=False: the retry policy does not kick in
    message = str(failures[0].step_failure_data.user_failure_data.description)
    assert "READYCLOUD_API_TOKEN" in message and "RC_SANDBOX=1" in message


@pytest.mark.parametrize("value", ["not-a-date", "2024-13-01"])
def test_a_bad_start_date_names_the_variable(value: str) -> None:
    """RC_SYNC_START_DATE that is not a date stops the load with the variable's name."""
    out = subprocess.run(
        [sys.executable, "-c", "import pipelines.definitions"],
        cwd=REPO,
        env=clean_environ(RC_SYNC_START_DATE=value),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0 and "RC_SYNC_START_DATE" in out.stderr
