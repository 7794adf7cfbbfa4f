"""Column types that behave the same on SQLite and PostgreSQL: aware UTC timestamps, decimals, JSON."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

# On SQLite timestamps are fixed-width ISO-8601 UTC text, so text order == time order.
SQLITE_TIMESTAMP_LENGTH = 32


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamp: TIMESTAMPTZ on PostgreSQL, ISO-8601 UTC text on SQLite."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        """TEXT-like storage on SQLite, TIMESTAMP WITH TIME ZONE elsewhere."""
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.String(SQLITE_TIMESTAMP_LENGTH))
        return dialect.type_descriptor(sa.DateTime(timezone=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        """Reject naive datetimes; store as UTC."""
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected an aware datetime, got {type(value).__name__}")
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not allowed in the warehouse; give a timezone")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return to_sqlite_text(value)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        """Always hand back an aware UTC datetime."""
        if value is None:
            return None
        moment = datetime.fromisoformat(value) if isinstance(value, str) else value
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)


def to_sqlite_text(moment: datetime) -> str:
    """The SQLite storage form of an aware datetime: 2024-05-01T12:00:00.000000+00:00."""
    moment = moment.astimezone(UTC)
    return datetime(
        moment.year,
        moment.month,
        moment.day,
        moment.hour,
        moment.minute,
        moment.second,
        moment.microsecond,
        tzinfo=UTC,
    ).isoformat(timespec="microseconds")


class DecimalNumber(TypeDecorator[Decimal]):
    """Exact NUMERIC on PostgreSQL; NUMERIC affinity on SQLite, read back as Decimal."""

    impl = sa.Numeric
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        """Unconstrained NUMERIC; on SQLite without SQLAlchemy's float-to-Decimal scale."""
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.Numeric(asdecimal=False))
        return dialect.type_descriptor(sa.Numeric())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        """Decimals go in as they are; SQLite gets their text (it applies NUMERIC affinity)."""
        if value is None:
            return None
        if dialect.name == "sqlite":
            return float(value)
        return Decimal(value) if not isinstance(value, Decimal) else value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        """Always a Decimal (SQLite's REAL becomes its shortest decimal form)."""
        if value is None:
            return None
        if isinstance(value, Decimal):
            return value
        return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


def json_type() -> TypeEngine[Any]:
    """JSON that becomes JSONB on PostgreSQL; Python None is SQL NULL."""
    return sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
