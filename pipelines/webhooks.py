"""Webhooks in Dagster: a sensor recording applied webhook events, and a WARN health check.

The sensor launches no runs: every 30 s it reads the webhook events applied since its cursor
and records them as observations of `readycloud/orders`, `boxes`, `items` and `addresses`
for the affected days (one observation per table and day, however many events), so the UI
shows push freshness next to the scheduled runs.
"""

# No `from __future__ import annotations`: Dagster checks the `context` annotation at import.
from collections import defaultdict
from datetime import UTC, date, datetime

import dagster as dg
from dagster import AssetCheckExecutionContext

from pipelines.assets import TABLE_KEYS
from pipelines.partitions import start_key
from pipelines.resources import RcSyncResource
from rc_sync.webhooks import service

WEBHOOK_HEALTH = "webhooks_healthy"
# Warn when more than this share of the changes polls judged in the last day were missed by
# webhooks, or when the last day's share is more than twice the week's (a rising miss rate).
MISS_RATE_WARN = 0.05


@dg.sensor(
    name="readycloud_webhook_events",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Records webhook events applied by `rc-sync webhooks serve` as observations of the "
        "affected tables' days (batched; never launches a run)."
    ),
)
def readycloud_webhook_events(
    context: dg.SensorEvaluationContext, rc_sync: RcSyncResource
) -> dg.SensorResult:
    """Observe the days touched by newly applied webhook events."""
    after = int(context.cursor or 0)
    events = service.applied_events(rc_sync.settings(api=False), after)
    if not events:
        return dg.SensorResult(cursor=str(after))
    first = date.fromisoformat(start_key())
    today = datetime.now(UTC).date()
    per_day: dict[date, list[tuple[str, datetime]]] = defaultdict(list)
    for _, org, nested, applied_at in events:
        day = (nested or applied_at).astimezone(UTC).date()
        if first <= day <= today:
            per_day[day].append((org, applied_at))
    observations = []
    for day, hits in sorted(per_day.items()):
        latest = max(at for _, at in hits)
        for key in TABLE_KEYS.values():
            observations.append(
                dg.AssetObservation(
                    asset_key=key,
                    partition=day.isoformat(),
                    metadata={
                        "source": "webhook",
                        "webhook_events": len(hits),
                        "orgs": dg.MetadataValue.json(sorted({org for org, _ in hits})),
                        "last_applied_at": dg.MetadataValue.timestamp(latest),
                    },
                )
            )
    context.log.info(f"{len(events)} webhook events on {len(per_day)} day(s)")
    return dg.SensorResult(asset_events=observations, cursor=str(events[-1][0]))


@dg.asset_check(
    asset=TABLE_KEYS["orders"],
    name=WEBHOOK_HEALTH,
    description=(
        "Webhooks registered with `rc-sync webhooks register` are not suspended, and polls find "
        "few changes the webhooks missed (WARN)."
    ),
)
def webhooks_healthy(
    context: AssetCheckExecutionContext, rc_sync: RcSyncResource
) -> dg.AssetCheckResult:
    """Warn on suspended webhooks and on a high or rising webhook miss rate."""
    # Without a token, service.health judges from the warehouse alone.
    health = service.health(rc_sync.settings(api=False))
    day, week = health.miss_rate_day, health.miss_rate_week
    problems = []
    if health.suspended:
        problems.append(
            "SUSPENDED webhook(s) for " + ", ".join(health.suspended) + ": fix the receiver, "
            "then re-enable with `rc-sync webhooks register --remote-url <base>`"
        )
    if day is not None and (day > MISS_RATE_WARN or (week and day > 2 * week and day > 0.01)):
        problems.append(
            f"webhooks missed {day:.1%} of the changes polls judged in the last day "
            f"(7 days: {week or 0:.1%}): deliveries are being lost"
        )
    if health.registered == 0:
        description = "no webhooks registered (polling only)"
    else:
        description = "; ".join(problems) or f"{health.registered} webhook(s) healthy"
    return dg.AssetCheckResult(
        passed=not problems,
        severity=dg.AssetCheckSeverity.WARN,
        description=description,
        metadata={
            "registered": health.registered,
            "suspended": len(health.suspended),
            "judged_changes_day": health.hits_day + health.misses_day,
            "missed_changes_day": health.misses_day,
            "judged_changes_week": health.hits_week + health.misses_week,
            "missed_changes_week": health.misses_week,
        },
    )
