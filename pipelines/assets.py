"""The ReadyCloud assets: one API read (one engine call) producing four tables, plus two views."""

# No `from __future__ import annotations`: Dagster checks the `context` annotation at import.
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import dagster as dg
from dagster import AssetExecutionContext

from pipelines import metadata, queries
from pipelines.partitions import (
    daily_partitions,
    day_bounds,
    days_in_range,
    key_to_day,
    today_key,
)
from pipelines.resources import (
    ReadyCloudResource,
    WarehouseResource,
    fatal_errors_fail_fast,
    open_engine,
)
from rc_sync.report import RunReport

GROUP = "readycloud"
POOL = "readycloud_api"
MODE_TAG = "rc_sync/mode"
INCREMENTAL = "incremental"
BACKFILL = "backfill"
LOAD_ISSUES_CHECK = "no_new_load_issues"
# An incremental run marks at most this many other partitions as materialized (each costs
# four events); a first, full sync touches every day of history and says so instead.
MAX_REPORTED_PARTITIONS = 62

TABLE_DESCRIPTIONS = {
    "orders": "ReadyCloud orders, one row per order, current state at the source.",
    "boxes": "Boxes (packages) of each order, mirroring the order's current boxes.",
    "items": "Item lines in each box, mirroring the order's current items.",
    "addresses": "Ship-to and ship-from address of each order.",
}
VIEW_DESCRIPTIONS = {
    "order_lines": "Analyst view: one row per item line with its order, box and ship-to context.",
    "daily_order_summary": "Analyst view: orders, items and money per org, UTC day and currency.",
}


def asset_key(name: str) -> dg.AssetKey:
    """The asset key of a warehouse table or view: readycloud/<name>."""
    return dg.AssetKey([GROUP, name])


TABLE_KEYS = {name: asset_key(name) for name in metadata.DATA_TABLES}
VIEW_KEYS = {name: asset_key(name) for name in metadata.VIEW_NAMES}

# Transient failures (connection errors, 5xx after the client's own retries, lock timeouts)
# retry the whole step with exponential backoff and jitter: 30 s, ~60 s, ~120 s.
SYNC_RETRY_POLICY = dg.RetryPolicy(
    max_retries=3, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)


def _table_spec(name: str) -> dg.AssetSpec:
    return dg.AssetSpec(
        TABLE_KEYS[name],
        description=TABLE_DESCRIPTIONS[name],
        group_name=GROUP,
        kinds={"sql", "python"},
        metadata=metadata.definition_metadata(name),
        tags={"rc_sync/source": "readycloud-api-v2"},
    )


def run_mode(context: AssetExecutionContext) -> str:
    """`incremental` for scheduled refresh runs (tag rc_sync/mode), else `backfill`."""
    return INCREMENTAL if context.run.tags.get(MODE_TAG) == INCREMENTAL else BACKFILL


def backfill_key(context: AssetExecutionContext) -> str:
    """The resume key of a partition run: its backfill id, else its root run id."""
    backfill_id = context.run.tags.get("dagster/backfill")
    if backfill_id:
        return f"dagster-backfill:{backfill_id}"
    return f"dagster-run:{context.run.root_run_id or context.run.run_id}"


@dg.multi_asset(
    name="readycloud_sync",
    specs=[_table_spec(name) for name in metadata.DATA_TABLES],
    check_specs=[
        dg.AssetCheckSpec(
            LOAD_ISSUES_CHECK,
            asset=TABLE_KEYS["orders"],
            description="Warns when this run recorded new load_issues (values it could not parse).",
        )
    ],
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    retry_policy=SYNC_RETRY_POLICY,
    pool=POOL,
    op_tags={"rc_sync/reads": "readycloud-api"},
)
def readycloud_sync(
    context: AssetExecutionContext, readycloud: ReadyCloudResource, warehouse: WarehouseResource
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Read the selected days (or, on refresh runs, everything changed) from ReadyCloud once."""
    keys = context.partition_keys
    started = datetime.now(UTC)
    mode = run_mode(context)
    with fatal_errors_fail_fast(), open_engine(readycloud, warehouse) as engine:
        if mode == INCREMENTAL:
            context.log.info("refresh run: incremental sync from the live watermark")
            report = engine.sync_incremental()
        else:
            days = days_in_range(keys[0], keys[-1])
            key = backfill_key(context)
            context.log.info(f"backfill of {len(days)} day(s) {keys[0]}..{keys[-1]} (key {key})")
            report = engine.backfill_days(days, key=key)
        db = engine.db
        since, until = day_bounds(key_to_day(keys[0]), key_to_day(keys[-1]))
        with db.connect() as conn:
            counts = {
                t: queries.rows_in_window(conn, t, since, until) for t in metadata.DATA_TABLES
            }
            touched = _touched_keys(conn, report, set(keys)) if mode == INCREMENTAL else []
            new_issues = queries.load_issues_since(conn, started)
    _log_report(context, report)
    for name in metadata.DATA_TABLES:
        meta = metadata.table_metadata(report, name, counts[name])
        if len(keys) > 1:  # a range run: the count covers the whole range, not one day
            meta["rc_sync/rows_in_run_window"] = meta.pop("dagster/row_count")
        meta["rc_sync/partitions"] = f"{keys[0]}..{keys[-1]}" if len(keys) > 1 else keys[0]
        if touched:
            meta["rc_sync/other_partitions_touched"] = (
                ", ".join(touched)
                if len(touched) <= MAX_REPORTED_PARTITIONS
                else f"{len(touched)} days, {touched[0]}..{touched[-1]} (not marked one by one)"
            )
        yield dg.MaterializeResult(asset_key=TABLE_KEYS[name], metadata=meta)
    if len(touched) <= MAX_REPORTED_PARTITIONS:
        for partition in touched:
            for name in metadata.DATA_TABLES:
                context.log_event(
                    dg.AssetMaterialization(
                        asset_key=TABLE_KEYS[name],
                        partition=partition,
                        description="Refreshed by an incremental run of another partition.",
                        metadata={
                            "rc_sync/mode": INCREMENTAL,
                            "rc_sync/refresh_run": context.run.run_id,
                        },
                    )
                )
    else:
        context.log.info(
            f"this run loaded orders of {len(touched)} other days ({touched[0]}..{touched[-1]}); "
            f"more than {MAX_REPORTED_PARTITIONS}, so they are not marked one by one "
            "(launch a backfill of that range to see them as materialized)"
        )
    issues_total = report.total("load_issues_new")
    yield dg.AssetCheckResult(
        asset_key=TABLE_KEYS["orders"],
        check_name=LOAD_ISSUES_CHECK,
        passed=issues_total == 0,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            "no new load issues"
            if issues_total == 0
            else f"{issues_total} new load issue(s): SELECT * FROM load_issues ORDER BY seen_at DESC"
        ),
        metadata={
            "load_issues_new": issues_total,
            "by_column": dg.MetadataValue.json(
                [{k: v for k, v in row.items()} for row in new_issues[:50]]
            ),
        },
    )


def _touched_keys(conn: Any, report: RunReport, own: set[str]) -> list[str]:
    """Partition keys, other than the run's own, whose days got rows from an incremental run."""
    since_values = [o.window_since for o in report.orgs]
    since = (
        None
        if any(s is None for s in since_values) or not since_values
        else min(s for s in since_values if s is not None)
    )
    until_values = [o.window_until for o in report.orgs if o.window_until is not None]
    until = max(until_values) if until_values else None
    first, last = daily_partitions.start.date().isoformat(), today_key()
    days = queries.orders_per_day(conn, since, until)
    return sorted(day for day in days if first <= day <= last and day not in own)


def _log_report(context: AssetExecutionContext, report: RunReport) -> None:
    """One log line per org (never the token: the report holds none)."""
    for org in report.orgs:
        context.log.info(
            f"org {org.org_pk} [{org.mode}, {org.path or 'n/a'}]: {org.orders_read} read, "
            f"{org.orders_new} new, {org.orders_updated} updated, {org.orders_unchanged} unchanged, "
            f"{org.load_issues_new} new load issues, {org.days_done} day(s) done, "
            f"{org.days_skipped} resumed; watermark {org.watermark_before} -> {org.watermark_after}"
        )
    context.log.info(
        f"{report.requests} API requests, {report.retries} retries, {report.throttled} 429s, "
        f"{report.elapsed_s:.1f}s"
    )


@dg.multi_asset(
    name="readycloud_views",
    specs=[
        dg.AssetSpec(
            VIEW_KEYS["order_lines"],
            description=VIEW_DESCRIPTIONS["order_lines"],
            group_name=GROUP,
            deps=[TABLE_KEYS[t] for t in metadata.DATA_TABLES],
            kinds={"sql", "view"},
            metadata=metadata.definition_metadata("order_lines"),
            skippable=True,
        ),
        dg.AssetSpec(
            VIEW_KEYS["daily_order_summary"],
            description=VIEW_DESCRIPTIONS["daily_order_summary"],
            group_name=GROUP,
            deps=[TABLE_KEYS["orders"], TABLE_KEYS["items"]],
            kinds={"sql", "view"},
            metadata=metadata.definition_metadata("daily_order_summary"),
            skippable=True,
        ),
    ],
    can_subset=True,
    # Lets `dagster asset materialize --partition-range` include the views with the tables.
    backfill_policy=dg.BackfillPolicy.single_run(),
)
def readycloud_views(
    context: AssetExecutionContext, warehouse: WarehouseResource
) -> Iterator[dg.MaterializeResult]:
    """Confirm the analyst views (created by the migrations) answer, and report their size."""
    engine = warehouse.make_engine()
    try:
        with engine.connect() as conn:
            for key in sorted(context.selected_asset_keys, key=lambda k: k.to_user_string()):
                view = key.path[-1]
                try:
                    rows = queries.view_row_count(conn, view)
                except Exception as exc:
                    raise dg.Failure(
                        description=(
                            f"view {view} is not queryable ({type(exc).__name__}); "
                            "apply the migrations with `rc-sync migrate`"
                        ),
                        allow_retries=False,
                    ) from None
                yield dg.MaterializeResult(asset_key=key, metadata={"dagster/row_count": rows})
    finally:
        engine.dispose()
