"""Datetime parsing and formatting for the ReadyCloud API and user input (always UTC-aware), and UTC days."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta

# ISO 8601 as the API writes it: date, 'T' or space, time with optional fraction, Z or offset.
_API_DATETIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?$",
    re.IGNORECASE,
)


def parse_api_datetime(value: str) -> datetime:
    """Parse an API timestamp into an aware UTC datetime; naive input is taken as UTC.

    Raises ValueError on anything that is not an ISO 8601 date-time.
    """
    text = value.strip()
    if not _API_DATETIME.match(text):
        raise ValueError(f"not an ISO 8601 date-time: {value[:80]!r}")
    if text[-1] in "zZ":
        text = text[:-1] + "+00:00"
    # Python's parser accepts at most 6 fraction digits; the API may send more.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def format_api_datetime(moment: datetime) -> str:
    """Format an aware datetime as the API's UTC form with microseconds: 2024-05-01T12:00:00.000000Z."""
    if moment.tzinfo is None:
        raise ValueError("naive datetimes are not allowed; give a timezone")
    utc = moment.astimezone(UTC)
    # %Y is not zero-padded below year 1000 on glibc; the year is written with 4 digits here.
    return f"{utc.year:04d}-" + utc.strftime("%m-%dT%H:%M:%S.%fZ")


def parse_user_datetime(value: str) -> datetime:
    """Parse a CLI/config timestamp: `2024-05-01` is midnight UTC; no offset means UTC."""
    text = value.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return datetime.fromisoformat(text).replace(tzinfo=UTC)
    try:
        return parse_api_datetime(text)
    except ValueError:
        raise ValueError(
            f"{value!r} is not a date or ISO 8601 date-time "
            "(examples: 2024-05-01, 2024-05-01T12:00:00Z)"
        ) from None


def utc_now() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(UTC)


def day_bounds(first: date, last: date | None = None) -> tuple[datetime, datetime]:
    """The UTC window [first 00:00, last + 1 day 00:00) covering days first..last (one day by default)."""
    since = datetime.combine(first, time(0), tzinfo=UTC)
    until = datetime.combine(last or first, time(0), tzinfo=UTC) + timedelta(days=1)
    return since, until


def days_between(first: date, last: date) -> list[date]:
    """Every day from `first` to `last`, inclusive."""
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def api_datetime_or_none(value: object) -> datetime | None:
    """An API timestamp (e.g. nested_updated_at) as an aware datetime; None when absent or bad."""
    if not isinstance(value, str):
        return None
    try:
        return parse_api_datetime(value)
    except ValueError:
        return None
