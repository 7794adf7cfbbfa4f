"""The ReadyCloud assets: one API read (one engine call) producing four tables, plus two views."""

# No `from __future__ import annotations`: Dagster checks the `context` annotation at import.
from collections.abc import Iterator

import dagster as dg
from dagster import AssetExecutionContext

from pipelines import metadata
from pipelines.partitions import daily_partitions, key_to_day, start_key, today_key
from pipelines.resources import RcSyncResource
from pipelines.resume import resume_key
from rc_sync.catalog import DATA_TABLES, VIEW_NAMES
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
VIEW_PARENTS = {"order_lines": DATA_TABLES, "daily_order_summary": ("orders", "items")}


def asset_key(name: str) -> dg.AssetKey:
    """The asset key of a warehouse table or view: readycloud/<name>."""
    return dg.AssetKey([GROUP, name])


TABLE_KEYS = {name: asset_key(name) for name in DATA_TABLES}
VIEW_KEYS = {name: asset_key(name) for name in VIEW_NAMES}

# Transient failures (connection errors, 5xx after the client's own retries, lock timeouts)
# retry the whole step with exponential backoff and jitter: 30 s, ~60 s, ~120 s.
SYNC_RETRY_POLICY = dg.RetryPolicy(
    max_retries=3, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)


def _spec(name: str, description: str, kind: str, **kwargs: object) -> dg.AssetSpec:
    return dg.AssetSpec(
        asset_key(name),
        description=description,
        group_name=GROUP,
        kinds={kind, metadata.storage_kind()},
        metadata=metadata.definition_metadata(name),
        **kwargs,  # type: ignore[arg-type]
    )


def run_mode(context: AssetExecutionContext) -> str:
    """`incremental` for scheduled refresh runs (tag rc_sync/mode), else `backfill`."""
    return INCREMENTAL if context.run.tags.get(MODE_TAG) == INCREMENTAL else BACKFILL


def backfill_key(context: AssetExecutionContext) -> str:
    """The resume key of a partition run, shared by its re-executions and retries."""
    return resume_key(context.run, context.instance)


@dg.multi_asset(
    name="readycloud_sync",
    specs=[
        _spec(n, TABLE_DESCRIPTIONS[n], "python", tags={"rc_sync/source": "readycloud-api-v2"})
        for n in DATA_TABLES
    ],
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
    context: AssetExecutionContext, rc_sync: RcSyncResource
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Read the selected days (or, on refresh runs, everything changed) from ReadyCloud once."""
    with rc_sync.engine(describe_days=True) as engine:
        if run_mode(context) == INCREMENTAL:
            context.log.info("refresh run: incremental sync from the live watermark")
            report = engine.sync_incremental()
        else:
            days = [key_to_day(k) for k in context.partition_keys]
            context.log.info(f"backfill of {len(days)} day(s), key {backfill_key(context)}")
            report = engine.backfill_days(days, key=backfill_key(context))
    _log_report(context, report)
    context.instance.add_run_tags(context.run.run_id, metadata.run_tags(report))
    for day in context.partition_keys:  # each partition gets its own day's figures
        for name in DATA_TABLES:
            context.add_asset_metadata(
                metadata.day_metadata(report, name, day), TABLE_KEYS[name], partition_key=day
            )
    _mark_other_days(context, report)
    for name in DATA_TABLES:
        yield dg.MaterializeResult(asset_key=TABLE_KEYS[name])
    yield _load_issues_check(report)


def _mark_other_days(context: AssetExecutionContext, report: RunReport) -> None:
    """Record the other days a refresh run loaded orders for, each with its own row counts."""
    own, first, last = set(context.partition_keys), start_key(), today_key()
    others = [d for d in report.touched_days if first <= d <= last and d not in own]
    if len(others) > MAX_REPORTED_PARTITIONS:
        context.log.info(
            f"this run loaded orders of {len(others)} other days ({others[0]}..{others[-1]}); "
            f"more than {MAX_REPORTED_PARTITIONS}, so they are not marked one by one "
            "(launch a backfill of that range to see them as materialized)"
        )
        return
    for day in others:
        for name in DATA_TABLES:
            context.log_event(
                dg.AssetMaterialization(
                    asset_key=TABLE_KEYS[name],
                    partition=day,
                    description="Refreshed by an incremental run of another partition.",
                    metadata=metadata.day_metadata(report, name, day),
                )
            )


def _load_issues_check(report: RunReport) -> dg.AssetCheckResult:
    """WARN when the run recorded new load issues, with where they are."""
    issues_total = report.total("load_issues_new")
    return dg.AssetCheckResult(
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
            "by_column": dg.MetadataValue.json(report.load_issues[:50]),
        },
    )


def _log_report(context: AssetExecutionContext, report: RunReport) -> None:
    """One log line per org, and the run's totals (never the token: the report holds none)."""
    for org in report.orgs:
        context.log.info(
            f"org {org.org_pk} [{org.mode}, {org.path or 'n/a'}]: {org.orders_read} read, "
            f"{org.orders_new} new, {org.orders_updated} updated, {org.orders_unchanged} unchanged, "
            f"{org.load_issues_new} new load issues, {org.days_done} day(s) done, "
            f"{org.days_skipped} resumed; watermark {org.watermark_before} -> {org.watermark_after}"
        )
    purposes = ", ".join(f"{n} {p}" for p, n in report.requests_by_purpose.items()) or "none"
    context.log.info(
        f"{report.requests} API requests ({purposes}; budget {report.budget}, "
        f"{report.budget_wait_s:.0f}s waiting for it), {report.retries} retries, "
        f"{report.throttled} 429s, {report.elapsed_s:.1f}s"
    )


@dg.multi_asset(
    name="readycloud_views",
    specs=[
        _spec(
            name,
            VIEW_DESCRIPTIONS[name],
            "view",
            deps=[TABLE_KEYS[t] for t in VIEW_PARENTS[name]],
            skippable=True,
        )
        for name in VIEW_NAMES
    ],
    can_subset=True,
    # Lets `dagster asset materialize --partition-range` include the views with the tables.
    backfill_policy=dg.BackfillPolicy.single_run(),
)
def readycloud_views(
    context: AssetExecutionContext, rc_sync: RcSyncResource
) -> Iterator[dg.MaterializeResult]:
    """Confirm the analyst views (created by the migrations) answer, and report their size."""
    with rc_sync.engine() as engine:
        for key in sorted(context.selected_asset_keys, key=lambda k: k.to_user_string()):
            rows = engine.view_rows(key.path[-1])
            yield dg.MaterializeResult(asset_key=key, metadata={"dagster/row_count": rows})
