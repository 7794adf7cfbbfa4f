"""Jobs and schedules: the 15-minute incremental refresh and the daily deletion reconcile."""

# No `from __future__ import annotations`: Dagster checks the `context` annotation at import.
import dagster as dg
from dagster import OpExecutionContext

from pipelines.assets import GROUP, INCREMENTAL, MODE_TAG, POOL, SYNC_RETRY_POLICY, TABLE_KEYS
from pipelines.partitions import start_key, today_key
from pipelines.resources import RcSyncResource
from rc_sync.settings import DagsterSettings, load_part

SETTINGS = load_part(DagsterSettings)  # RC_SYNC_REFRESH_CRON, RC_SYNC_RECONCILE_CRON, ...
# Schedules start switched off unless RC_SYNC_SCHEDULES_ON=1 (then they run on deploy).
DEFAULT_STATUS = (
    dg.DefaultScheduleStatus.RUNNING if SETTINGS.schedules_on else dg.DefaultScheduleStatus.STOPPED
)

readycloud_refresh_job = dg.define_asset_job(
    "readycloud_refresh_job",
    selection=dg.AssetSelection.groups(GROUP),
    tags={MODE_TAG: INCREMENTAL},
    description="Incremental refresh: everything changed since the watermark, reported by day.",
)


@dg.schedule(
    name="readycloud_refresh",
    cron_schedule=SETTINGS.refresh_cron,
    job=readycloud_refresh_job,
    execution_timezone="UTC",
    default_status=DEFAULT_STATUS,
    description="Keeps the latest partitions fresh through the incremental (watermark) path.",
)
def readycloud_refresh(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    """Request one incremental run for the current UTC day's partition."""
    key = today_key(context.scheduled_execution_time)
    if key < start_key():
        return dg.SkipReason(f"{key} is before the first partition ({start_key()})")
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
def reconcile_deleted_orders(context: OpExecutionContext, rc_sync: RcSyncResource) -> None:
    """Mark orders that no longer exist at the source as deleted (and restore returned ones)."""
    with rc_sync.engine() as engine:
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
    cron_schedule=SETTINGS.reconcile_cron,
    job=readycloud_reconcile,
    execution_timezone="UTC",
    default_status=DEFAULT_STATUS,
    description="Runs the deletion reconcile once a day.",
)

__all__ = [
    "readycloud_reconcile",
    "readycloud_reconcile_daily",
    "readycloud_refresh",
    "readycloud_refresh_job",
]
