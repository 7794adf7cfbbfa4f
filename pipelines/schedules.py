"""Jobs and schedules: the 15-minute incremental refresh and the daily deletion reconcile."""

# No `from __future__ import annotations`: Dagster checks the `context` annotation at import.
import os

import dagster as dg
from dagster import OpExecutionContext

from pipelines.assets import GROUP, INCREMENTAL, MODE_TAG, POOL, SYNC_RETRY_POLICY, TABLE_KEYS
from pipelines.partitions import start_date, today_key
from pipelines.resources import (
    ReadyCloudResource,
    WarehouseResource,
    fatal_errors_fail_fast,
    open_engine,
)

REFRESH_CRON_ENV = "RC_SYNC_REFRESH_CRON"
RECONCILE_CRON_ENV = "RC_SYNC_RECONCILE_CRON"
SCHEDULES_ON_ENV = "RC_SYNC_SCHEDULES_ON"
DEFAULT_REFRESH_CRON = "*/15 * * * *"
DEFAULT_RECONCILE_CRON = "30 2 * * *"


def _cron(env: str, default: str) -> str:
    """A cron expression from the environment, or the default."""
    return os.environ.get(env, "").strip() or default


def _default_status() -> dg.DefaultScheduleStatus:
    """Schedules start switched off unless RC_SYNC_SCHEDULES_ON=1 (then they run on deploy)."""
    on = os.environ.get(SCHEDULES_ON_ENV, "").strip().lower() in {"1", "true", "yes", "on"}
    return dg.DefaultScheduleStatus.RUNNING if on else dg.DefaultScheduleStatus.STOPPED


readycloud_refresh_job = dg.define_asset_job(
    "readycloud_refresh_job",
    selection=dg.AssetSelection.groups(GROUP),
    tags={MODE_TAG: INCREMENTAL},
    description="Incremental refresh: everything changed since the watermark, reported by day.",
)


@dg.schedule(
    name="readycloud_refresh",
    cron_schedule=_cron(REFRESH_CRON_ENV, DEFAULT_REFRESH_CRON),
    job=readycloud_refresh_job,
    execution_timezone="UTC",
    default_status=_default_status(),
    description="Keeps the latest partitions fresh through the incremental (watermark) path.",
)
def readycloud_refresh(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    """Request one incremental run for the current UTC day's partition."""
    key = today_key(context.scheduled_execution_time)
    if key < start_date():
        return dg.SkipReason(f"{key} is before the first partition ({start_date()})")
    return dg.RunRequest(
        run_key=None,
        partition_key=key,
        tags={MODE_TAG: INCREMENTAL, "rc_sync/scheduled_for": key},
    )


@dg.op(
    name="reconcile_deleted_orders",
    pool=POOL,
    retry_policy=SYNC_RETRY_POLICY,
    tags={"rc_sync/reads": "readycloud-api"},
)
def reconcile_deleted_orders(
    context: OpExecutionContext, readycloud: ReadyCloudResource, warehouse: WarehouseResource
) -> None:
    """Mark orders that no longer exist at the source as deleted (and restore returned ones)."""
    with fatal_errors_fail_fast(), open_engine(readycloud, warehouse) as engine:
        report = engine.reconcile()
    deleted, restored = report.total("orders_deleted"), report.total("orders_restored")
    context.log.info(
        f"reconcile: {report.total('orders_read')} orders at the source, {deleted} marked "
        f"deleted, {restored} restored; {report.requests} API requests"
    )
    context.log_event(
        dg.AssetObservation(
            asset_key=TABLE_KEYS["orders"],
            description="Deletion reconcile against a full listing of each org.",
            metadata={
                "orders_at_source": report.total("orders_read"),
                "orders_marked_deleted": deleted,
                "orders_restored": restored,
                "rc_sync/api_requests": report.requests,
                "rc_sync/elapsed_s": round(report.elapsed_s, 3),
            },
        )
    )


@dg.job(
    name="readycloud_reconcile",
    tags={MODE_TAG: "reconcile"},
    description="Finds orders deleted at the source and marks them (orders.deleted_at).",
)
def readycloud_reconcile() -> None:
    """Run the deletion reconcile once."""
    reconcile_deleted_orders()


readycloud_reconcile_daily = dg.ScheduleDefinition(
    name="readycloud_reconcile_daily",
    cron_schedule=_cron(RECONCILE_CRON_ENV, DEFAULT_RECONCILE_CRON),
    job=readycloud_reconcile,
    execution_timezone="UTC",
    default_status=_default_status(),
    description="Runs the deletion reconcile once a day.",
)

__all__ = [
    "readycloud_reconcile",
    "readycloud_reconcile_daily",
    "readycloud_refresh",
    "readycloud_refresh_job",
]
