"""BulkWriter's column conversions: the vectorized forms equal the per-value ones."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from warehouse import models
from warehouse.bulk import VECTOR_MIN, _converter, _sqlite_datetimes, _utc_texts, column_converter
from warehouse.types import DecimalNumber, UTCDateTime, to_sqlite_text

utc_moments = st.datetimes(
    min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59, 999999)
).map(lambda d: d.replace(tzinfo=UTC))


def _expected(values: list[Any]) -> list[Any]:
    return [None if v is None else to_sqlite_text(v) for v in values]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), utc_moments), max_size=3 * VECTOR_MIN))
def test_sqlite_datetimes_equal_to_sqlite_text(values: list[Any]) -> None:
    assert _sqlite_datetimes(values) == _expected(values)


def test_sqlite_datetimes_edges_and_long_columns() -> None:
    edges = [
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(1677, 9, 21, 0, 12, 43, 145224, tzinfo=UTC),  # beyond pandas' ns range
        datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(2262, 4, 11, 23, 47, 16, 854776, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ]
    values: list[Any] = [*edges, None] * 40
    assert _utc_texts(values) == _expected(values)
    assert _sqlite_datetimes(values) == _expected(values)
    assert _sqlite_datetimes([None] * 100) == [None] * 100


def test_other_datetimes_take_the_per_value_path() -> None:
    base = datetime(2024, 3, 31, 1, 30, 0, 5, tzinfo=UTC)
    others: list[Any] = [
        base.astimezone(timezone(timedelta(hours=2))),
        base.astimezone(ZoneInfo("Europe/Berlin")),
        pd.Timestamp(base),
    ]
    for other in others:
        values = [base, other] * VECTOR_MIN
        assert _utc_texts(values) is None
        assert _sqlite_datetimes(values) == _expected(values)


def testcolumn_converters_equal_the_per_value_ones() -> None:
    samples: dict[type, list[Any]] = {
        DecimalNumber: [None, Decimal("1.10"), Decimal("-0.000001"), Decimal("1E+3"), "2.5"],
        sa.Boolean: [None, True, False, 0, 1, 2],
        sa.Date: [None, date(2024, 5, 1), date(1, 1, 1)],
        UTCDateTime: [None, datetime(2024, 5, 1, tzinfo=UTC)] * VECTOR_MIN,
    }
    seen = set()
    for table in models.metadata.tables.values():
        for column in table.columns:
            for kind, values in samples.items():
                if isinstance(column.type, kind):
                    for dialect in ("sqlite", "postgresql"):
                        one = _converter(column, dialect)
                        assert column_converter(column, dialect)(values) == [
                            one(v) for v in values
                        ], (table.name, column.name, dialect)
                    seen.add(kind)
    assert seen == set(samples)
