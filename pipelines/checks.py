"""Asset checks on the warehouse tables: keys, orphans, freshness, and counts against the API."""

# No `from __future__ import annotations`: Dagster checks the `context` annotation at import.
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import dagster as dg
from dagster import AssetCheckExecutionContext

from pipelines.assets import POOL, TABLE_KEYS
from pipelines.partitions import key_to_day, today_key
from pipelines.resources import RcSyncResource
from rc_sync.catalog import PARENTS, PRIMARY_KEYS

UNIQUE = "unique_keys"
ORPHANS = "no_orphans"
FRESHNESS = "watermark_fresh"
ROW_COUNT = "row_count_matches_api"
NORMALIZATION = "normalization_current"
SCHEMA_DRIFT = "no_schema_drift"
# How many of the most recently changed documents the schema-drift check reads (new fields
# arrive with new versions; `rc-sync schema-drift` reads them all).
DRIFT_LATEST = 5_000

INTEGRITY_SPECS = [
    *[
        dg.AssetCheckSpec(
            UNIQUE,
            asset=key,
            blocking=True,
            description=f"Every {name} key ({', '.join(PRIMARY_KEYS[name])}) occurs once.",
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
            "is active) is within the freshness limit of now (passes as not applicable before "
            "the first live sync)."
        ),
    ),
    dg.AssetCheckSpec(
        NORMALIZATION,
        asset=TABLE_KEYS["orders"],
        description="Every order was typed by the installed normalization version; if not, "
        "the readycloud_rebuild job (`rc-sync rebuild`) re-derives them without API requests.",
    ),
    dg.AssetCheckSpec(
        SCHEMA_DRIFT,
        asset=TABLE_KEYS["orders"],
        description=f"The {DRIFT_LATEST:,} most recently changed documents hold no field that "
        "rc-sync does not know (a new or renamed ReadyCloud field stays in `raw` only); "
        "`rc-sync schema-drift` lists them all.",
    ),
]


def _examples(rows: list[tuple[object, ...]]) -> dg.MetadataValue:
    return dg.MetadataValue.json([list(map(str, row)) for row in rows])


@dg.multi_asset_check(
    name="readycloud_integrity_checks",
    specs=INTEGRITY_SPECS,
    can_subset=True,
    description="Key uniqueness and orphan checks (blocking) plus watermark freshness, in SQL.",
)
def readycloud_integrity_checks(
    context: AssetCheckExecutionContext, rc_sync: RcSyncResource
) -> Iterator[dg.AssetCheckResult]:
    """Check keys, parent rows and watermark lag in the warehouse."""
    selected = context.selected_asset_check_keys
    with rc_sync.engine() as engine:
        for name, key in TABLE_KEYS.items():
            if dg.AssetCheckKey(key, UNIQUE) in selected:
                dupes, examples = engine.duplicate_keys(name)
                yield dg.AssetCheckResult(
                    asset_key=key,
                    check_name=UNIQUE,
                    passed=dupes == 0,
                    severity=dg.AssetCheckSeverity.ERROR,
                    description=None if dupes == 0 else f"{dupes} duplicated key(s) in {name}",
                    metadata={"duplicated_keys": dupes, "examples": _examples(examples)},
                )
        for child, parent in PARENTS.items():
            if dg.AssetCheckKey(TABLE_KEYS[child], ORPHANS) in selected:
                total, examples = engine.orphans(child)
                yield dg.AssetCheckResult(
                    asset_key=TABLE_KEYS[child],
                    check_name=ORPHANS,
                    passed=total == 0,
                    severity=dg.AssetCheckSeverity.ERROR,
                    description=None if total == 0 else f"{total} {child} row(s) without {parent}",
                    metadata={"orphans": total, "examples": _examples(examples)},
                )
        if dg.AssetCheckKey(TABLE_KEYS["orders"], FRESHNESS) in selected:
            yield _freshness(
                engine.watermarks(),
                engine.webhooks_applied(),
                engine.settings.dagster.freshness_limit_minutes,
            )
        if dg.AssetCheckKey(TABLE_KEYS["orders"], NORMALIZATION) in selected:
            yield _normalization(engine.stale_orders())
        if dg.AssetCheckKey(TABLE_KEYS["orders"], SCHEMA_DRIFT) in selected:
            yield _schema_drift(engine.schema_drift(latest=DRIFT_LATEST))


def _schema_drift(fields: list[Any]) -> dg.AssetCheckResult:
    """Warn when stored documents carry fields that rc-sync does not know."""
    new = [f for f in fields if not f.documented]
    return dg.AssetCheckResult(
        asset_key=TABLE_KEYS["orders"],
        check_name=SCHEMA_DRIFT,
        passed=not new,
        severity=dg.AssetCheckSeverity.WARN,
        description=None
        if not new
        else f"{len(new)} field(s) in the stored documents that no column maps: "
        + ", ".join(f.path for f in new[:10])
        + "; they stay in orders.raw (README 'Schema changes', `rc-sync schema-drift`)",
        metadata={
            "new_fields": dg.MetadataValue.json(
                [
                    {
                        "field": f.path,
                        "documents": f.documents,
                        "first_seen": str(f.first_seen),
                        "last_seen": str(f.last_seen),
                    }
                    for f in new
                ]
            ),
            "documented_raw_only": len(fields) - len(new),
        },
    )


def _normalization(stale: dict[str, int]) -> dg.AssetCheckResult:
    """Warn when orders were typed by an older normalization than the installed one."""
    total = sum(stale.values())
    return dg.AssetCheckResult(
        asset_key=TABLE_KEYS["orders"],
        check_name=NORMALIZATION,
        passed=total == 0,
        severity=dg.AssetCheckSeverity.WARN,
        description=None
        if total == 0
        else f"{total} order(s) were normalized by an older normalization version than the "
        "installed one; run the readycloud_rebuild job or `rc-sync rebuild` (no API requests)",
        metadata={"stale_orders": total, "per_org": dg.MetadataValue.json(stale)},
    )


def _freshness(
    marks: Mapping[str, datetime | None],
    pushed: Mapping[str, datetime],
    limit_minutes: float,
) -> dg.AssetCheckResult:
    """Pass when every org's data lags now by less than the limit.

    An org's data is as fresh as its live watermark or, when it has an active (unsuspended)
    webhook, the last webhook event applied, whichever is later: webhooks keep it current
    between polls, and the polls that repair missed deliveries still move the watermark.
    Before any live (incremental) sync there is nothing to judge: the check passes and says
    so, since backfills never set the live watermark.
    """
    now = datetime.now(UTC)
    fresh_at = {
        org: max((t for t in (mark, pushed.get(org)) if t is not None), default=None)
        for org, mark in marks.items()
    }
    lags = {org: (now - at).total_seconds() / 60 for org, at in fresh_at.items() if at}
    meta: dict[str, Any] = {"limit_minutes": limit_minutes}
    if not lags:
        return dg.AssetCheckResult(
            asset_key=TABLE_KEYS["orders"],
            check_name=FRESHNESS,
            passed=True,
            severity=dg.AssetCheckSeverity.WARN,
            description=(
                "not applicable yet: no live (incremental) sync has run, and backfills do not "
                "set the live watermark; the refresh schedule (or `rc-sync sync`) starts it"
            ),
            metadata=meta,
        )
    stale = sorted(org for org in marks if org not in lags or lags[org] > limit_minutes)
    meta["max_lag_minutes"] = round(max(lags.values()), 2)
    meta["watermarks"] = dg.MetadataValue.json(
        {org: mark.isoformat() if mark else None for org, mark in marks.items()}
    )
    meta["webhook_applied_at"] = dg.MetadataValue.json(
        {org: at.isoformat() for org, at in pushed.items() if org in marks}
    )
    return dg.AssetCheckResult(
        asset_key=TABLE_KEYS["orders"],
        check_name=FRESHNESS,
        passed=not stale,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"watermark older than {limit_minutes:g} min (or no live sync yet) for org(s) "
            f"{', '.join(stale)}"
            if stale
            else f"every org's watermark is within {limit_minutes:g} min of now"
        ),
        metadata=meta,
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
    context: AssetCheckExecutionContext, rc_sync: RcSyncResource
) -> dg.AssetCheckResult:
    """Compare the warehouse's order count of the run's days with the API's, per org."""
    first, last = run_partition_range(context.run.tags) or (today_key(), today_key())
    with rc_sync.engine() as engine:
        per_org = engine.compare_counts(key_to_day(first), key_to_day(last))
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
