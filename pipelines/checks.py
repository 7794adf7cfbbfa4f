"""Asset checks on the warehouse tables: keys, orphans, freshness, and counts against the API."""

# No `from __future__ import annotations`: Dagster checks the `context` annotation at import.
import os
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta

import dagster as dg
from dagster import AssetCheckExecutionContext

from pipelines import queries
from pipelines.assets import POOL, TABLE_KEYS
from pipelines.partitions import day_bounds, key_to_day, today_key
from pipelines.resources import ReadyCloudResource, WarehouseResource, open_engine

FRESHNESS_ENV = "RC_SYNC_FRESHNESS_LIMIT_MINUTES"
DEFAULT_FRESHNESS_MINUTES = 60.0

UNIQUE = "unique_keys"
ORPHANS = "no_orphans"
FRESHNESS = "watermark_fresh"
ROW_COUNT = "row_count_matches_api"

# Child table -> the parent whose key its rows must find.
PARENTS = {"boxes": "orders", "items": "boxes", "addresses": "orders"}


def freshness_limit() -> timedelta:
    """How far the live watermark may lag behind now: RC_SYNC_FRESHNESS_LIMIT_MINUTES or 60."""
    value = os.environ.get(FRESHNESS_ENV, "").strip()
    return timedelta(minutes=float(value) if value else DEFAULT_FRESHNESS_MINUTES)


INTEGRITY_SPECS = [
    *[
        dg.AssetCheckSpec(
            UNIQUE,
            asset=key,
            blocking=True,
            description=f"Every {name} key ({', '.join(queries.KEYS[name])}) occurs once.",
        )
        for name, key in TABLE_KEYS.items()
    ],
    *[
        dg.AssetCheckSpec(
            ORPHANS,
            asset=TABLE_KEYS[child],
            blocking=True,
            description=f"Every row of {child} belongs to an existing row of {parent}.",
        )
        for child, parent in PARENTS.items()
    ],
    dg.AssetCheckSpec(
        FRESHNESS,
        asset=TABLE_KEYS["orders"],
        description=(
            "The live watermark of every org (or its last applied webhook event, when a webhook "
            "is active) is within the freshness limit of now."
        ),
    ),
]


@dg.multi_asset_check(
    name="readycloud_integrity_checks",
    specs=INTEGRITY_SPECS,
    can_subset=True,
    description="Key uniqueness and orphan checks (blocking) plus watermark freshness, in SQL.",
)
def readycloud_integrity_checks(
    context: AssetCheckExecutionContext, warehouse: WarehouseResource
) -> Iterator[dg.AssetCheckResult]:
    """Check keys, parent rows and watermark lag in the warehouse."""
    selected = context.selected_asset_check_keys
    engine = warehouse.make_engine()
    try:
        with engine.connect() as conn:
            for name, key in TABLE_KEYS.items():
                if dg.AssetCheckKey(key, UNIQUE) not in selected:
                    continue
                dupes = queries.duplicate_key_count(conn, name)
                examples = queries.duplicate_keys(conn, name) if dupes else []
                yield dg.AssetCheckResult(
                    asset_key=key,
                    check_name=UNIQUE,
                    passed=dupes == 0,
                    severity=dg.AssetCheckSeverity.ERROR,
                    description=None if dupes == 0 else f"{dupes} duplicated key(s) in {name}",
                    metadata={
                        "duplicated_keys": dupes,
                        "examples": dg.MetadataValue.json([list(map(str, e)) for e in examples]),
                    },
                )
            for child, parent in PARENTS.items():
                key = TABLE_KEYS[child]
                if dg.AssetCheckKey(key, ORPHANS) not in selected:
                    continue
                total, examples = queries.orphans(conn, child, parent)
                yield dg.AssetCheckResult(
                    asset_key=key,
                    check_name=ORPHANS,
                    passed=total == 0,
                    severity=dg.AssetCheckSeverity.ERROR,
                    description=None if total == 0 else f"{total} {child} row(s) without {parent}",
                    metadata={
                        "orphans": total,
                        "examples": dg.MetadataValue.json([list(map(str, e)) for e in examples]),
                    },
                )
            if dg.AssetCheckKey(TABLE_KEYS["orders"], FRESHNESS) in selected:
                from warehouse import webhooks as wh

                yield _freshness(queries.watermarks(conn), wh.last_applied(engine))
    finally:
        engine.dispose()


def _freshness(
    marks: dict[str, datetime | None], pushed: dict[str, datetime] | None = None
) -> dg.AssetCheckResult:
    """Pass when every org's data lags now by less than the limit.

    An org's data is as fresh as its live watermark or, when it has an active (unsuspended)
    webhook, the last webhook event applied, whichever is later: webhooks keep it current
    between polls, and the polls that repair missed deliveries still move the watermark.
    """
    limit = freshness_limit()
    now = datetime.now(UTC)
    pushed = pushed or {}
    fresh_at = {
        org: max((t for t in (mark, pushed.get(org)) if t is not None), default=None)
        for org, mark in marks.items()
    }
    lags = {org: (now - at).total_seconds() if at else None for org, at in fresh_at.items()}
    stale = sorted(org for org, lag in lags.items() if lag is None or lag > limit.total_seconds())
    if not marks:
        description = "no live sync has run yet (no sync_state rows)"
    elif stale:
        description = f"watermark older than {limit} (or missing) for org(s) {', '.join(stale)}"
    else:
        description = None
    known = [lag for lag in lags.values() if lag is not None]
    return dg.AssetCheckResult(
        asset_key=TABLE_KEYS["orders"],
        check_name=FRESHNESS,
        passed=bool(marks) and not stale,
        severity=dg.AssetCheckSeverity.WARN,
        description=description,
        metadata={
            "limit_minutes": limit.total_seconds() / 60,
            "max_lag_minutes": round(max(known) / 60, 2) if known else -1,
            "watermarks": dg.MetadataValue.json(
                {org: mark.isoformat() if mark else None for org, mark in marks.items()}
            ),
            "webhook_applied_at": dg.MetadataValue.json(
                {org: at.isoformat() for org, at in pushed.items() if org in marks}
            ),
        },
    )


def run_partition_range(tags: Mapping[str, str]) -> tuple[str, str] | None:
    """The first and last partition key of a run, from its tags (None: not a partition run)."""
    start, end = (
        tags.get("dagster/asset_partition_range_start"),
        tags.get("dagster/asset_partition_range_end"),
    )
    if start and end:
        return start, end
    key = tags.get("dagster/partition")
    return (key, key) if key else None


@dg.asset_check(
    asset=TABLE_KEYS["orders"],
    name=ROW_COUNT,
    description="Live orders in the run's days equal the API's count for the same window.",
    pool=POOL,
)
def row_count_matches_api(
    context: AssetCheckExecutionContext,
    readycloud: ReadyCloudResource,
    warehouse: WarehouseResource,
) -> dg.AssetCheckResult:
    """Compare the warehouse's order count of the run's days with the API's, per org."""
    first, last = run_partition_range(context.run.tags) or (today_key(), today_key())
    since, until = day_bounds(key_to_day(first), key_to_day(last))
    per_org: dict[str, dict[str, int]] = {}
    with open_engine(readycloud, warehouse) as engine:
        orgs = engine.resolve_orgs()
        with engine.db.connect() as conn:
            for org in orgs:
                per_org[org] = {
                    "warehouse": queries.rows_in_window(conn, "orders", since, until, [org]),
                    "api": engine.count_window(org, since, until),
                }
    off = {org: c for org, c in per_org.items() if c["warehouse"] != c["api"]}
    window = first if first == last else f"{first}..{last}"
    return dg.AssetCheckResult(
        passed=not off,
        # Orders keep changing at the source, so a difference may be a change made after the
        # sync read the window; it is worth a look, not a stopped pipeline.
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"orders of {window} match the API for {len(per_org)} org(s)"
            if not off
            else f"orders of {window} differ from the API for org(s) {', '.join(sorted(off))}"
        ),
        metadata={
            "window": window,
            "warehouse_orders": sum(c["warehouse"] for c in per_org.values()),
            "api_orders": sum(c["api"] for c in per_org.values()),
            "per_org": dg.MetadataValue.json(per_org),
        },
    )
