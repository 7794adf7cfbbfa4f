"""Daily UTC partitions by the day of each order's `nested_updated_at`, today included."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta

import dagster as dg

START_DATE_ENV = "RC_SYNC_START_DATE"
DEFAULT_START_DATE = "2020-01-01"


def start_date() -> str:
    """The first partition day: RC_SYNC_START_DATE (YYYY-MM-DD) or 2020-01-01."""
    value = os.environ.get(START_DATE_ENV, "").strip() or DEFAULT_START_DATE
    try:
        date.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{START_DATE_ENV}={value!r} is not a date; use YYYY-MM-DD (e.g. {DEFAULT_START_DATE})"
        ) from None
    return value


# end_offset=1: the partition of the current (incomplete) UTC day exists, so "today" can be
# refreshed and backfilled like any other day.
daily_partitions = dg.DailyPartitionsDefinition(
    start_date=start_date(), timezone="UTC", end_offset=1
)


def key_to_day(key: str) -> date:
    """The UTC day of a partition key (`2024-05-01`)."""
    return date.fromisoformat(key)


def day_to_key(day: date) -> str:
    """The partition key of a UTC day."""
    return day.isoformat()


def day_bounds(first: date, last: date) -> tuple[datetime, datetime]:
    """The UTC window [first 00:00, last + 1 day 00:00) covering days first..last."""
    since = datetime(first.year, first.month, first.day, tzinfo=UTC)
    until = datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1)
    return since, until


def days_in_range(first_key: str, last_key: str) -> list[date]:
    """Every day from one partition key to another, inclusive."""
    first, last = key_to_day(first_key), key_to_day(last_key)
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def keys_touched(
    since: datetime | None, until: datetime, partitions: dg.DailyPartitionsDefinition
) -> list[str]:
    """The partition keys whose days overlap [since, until) (since=None: from the first day)."""
    first = partitions.start.date() if since is None else since.astimezone(UTC).date()
    first = max(first, partitions.start.date())
    end = until.astimezone(UTC)
    last = end.date() if end.time() != datetime.min.time() else end.date() - timedelta(days=1)
    if last < first:
        return []
    return [day_to_key(d) for d in days_in_range(day_to_key(first), day_to_key(last))]


def today_key(now: datetime | None = None) -> str:
    """The partition key of the current UTC day (the last partition, thanks to end_offset=1)."""
    moment = now or datetime.now(UTC)
    return day_to_key(moment.astimezone(UTC).date())
