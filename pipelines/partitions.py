"""Daily UTC partitions by the day of each order's `nested_updated_at`, today included."""

from __future__ import annotations

from datetime import UTC, date, datetime

import dagster as dg

from rc_sync.settings import DagsterSettings, load_part

# end_offset=1: the partition of the current (incomplete) UTC day exists, so "today" can be
# refreshed and backfilled like any other day.
daily_partitions = dg.DailyPartitionsDefinition(
    start_date=load_part(DagsterSettings).start_date.isoformat(), timezone="UTC", end_offset=1
)


def start_key() -> str:
    """The first partition key (RC_SYNC_START_DATE, default 2020-01-01)."""
    return daily_partitions.start.date().isoformat()


def key_to_day(key: str) -> date:
    """The UTC day of a partition key (`2024-05-01`)."""
    return date.fromisoformat(key)


def today_key(now: datetime | None = None) -> str:
    """The partition key of the current UTC day (the last partition, thanks to end_offset=1)."""
    moment = now or datetime.now(UTC)
    return moment.astimezone(UTC).date().isoformat()
