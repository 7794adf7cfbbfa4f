"""Value parsers: documented examples, garbage, and properties (never raise, round-trip)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rc_common.timefmt import format_api_datetime
from warehouse import parsing
from warehouse.parsing import (
    Money,
    parse_bool,
    parse_datetime,
    parse_int,
    parse_length_m,
    parse_money,
    parse_text,
    parse_weight_g,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("70.59 USD", Money(Decimal("70.59"), "USD")),
        ("0.00 USD", Money(Decimal("0.00"), "USD")),
        ("  15.00   eur ", Money(Decimal("15.00"), "EUR")),
        ("USD 1.5", Money(Decimal("1.5"), "USD")),
        ("-3.20 GBP", Money(Decimal("-3.20"), "GBP")),
        ("12", Money(Decimal("12"), None)),
        (12, Money(Decimal("12"), None)),
        (3.25, Money(Decimal("3.25"), None)),
    ],
)
def test_money_examples(raw: Any, expected: Money) -> None:
    assert parse_money(raw) == (expected, None)


@pytest.mark.parametrize(
    "raw", ["abc", "12 XYZ", "1,234.00 USD", "NaN USD", "1e999 USD", True, {"a": 1}, [1]]
)
def test_money_garbage(raw: Any) -> None:
    value, error = parse_money(raw)
    assert value is None and error


@pytest.mark.parametrize("raw", [None, "", "   "])
def test_empty_values_are_null_without_error(raw: Any) -> None:
    for parse in (
        parse_money,
        parse_weight_g,
        parse_length_m,
        parse_datetime,
        parse_bool,
        parse_int,
    ):
        assert parse(raw) == (None, None)


@pytest.mark.parametrize(
    ("raw", "grams"),
    [
        ("170.000 g", Decimal("170.000")),
        ("140.0000 g", Decimal("140.0000")),
        ("1 lbs", Decimal("453.59237")),
        ("2 LB", Decimal("907.18474")),
        ("1.5kg", Decimal("1500.0")),
        ("4 oz", Decimal("113.398092500")),
        (250, Decimal("250")),
    ],
)
def test_weight_examples(raw: Any, grams: Decimal) -> None:
    value, error = parse_weight_g(raw)
    assert error is None and value == grams


@pytest.mark.parametrize(
    ("raw", "metres"),
    [
        ("0.1500 m", Decimal("0.15")),
        ("15 cm", Decimal("0.15")),
        ("150 MM", Decimal("0.150")),
        ("10 in", Decimal("0.254")),
        ("2 ft", Decimal("0.6096")),
    ],
)
def test_length_examples(raw: str, metres: Decimal) -> None:
    value, error = parse_length_m(raw)
    assert error is None and value == metres


@pytest.mark.parametrize("raw", ["5 stone", "-1 g", "g", "1 2 g", "heavy"])
def test_weight_garbage(raw: str) -> None:
    value, error = parse_weight_g(raw)
    assert value is None and error


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2013-07-11T20:49:00Z", datetime(2013, 7, 11, 20, 49, tzinfo=UTC)),
        ("2018-03-30T00:00:16.159321Z", datetime(2018, 3, 30, 0, 0, 16, 159321, tzinfo=UTC)),
        ("2018-03-30T00:00:16+00:00", datetime(2018, 3, 30, 0, 0, 16, tzinfo=UTC)),
        ("2018-03-30T02:00:16+02:00", datetime(2018, 3, 30, 0, 0, 16, tzinfo=UTC)),
        ("2018-03-30 00:00:16", datetime(2018, 3, 30, 0, 0, 16, tzinfo=UTC)),
        ("2018-03-30T00:00:16.159321999Z", datetime(2018, 3, 30, 0, 0, 16, 159321, tzinfo=UTC)),
    ],
)
def test_datetime_examples(raw: str, expected: datetime) -> None:
    value, error = parse_datetime(raw)
    assert error is None and value == expected and value.tzinfo is not None


@pytest.mark.parametrize(
    "raw", ["2024-02-30T00:00:00Z", "0001-01-01T00:00:00+05:00", "yesterday", 1714600000]
)
def test_datetime_garbage(raw: Any) -> None:
    value, error = parse_datetime(raw)
    assert value is None and error


def test_bools_and_ints() -> None:
    assert [parse_bool(v)[0] for v in (True, "true", "FALSE", "1", 0, "yes")] == [
        True,
        True,
        False,
        True,
        False,
        True,
    ]
    assert parse_bool("maybe")[1] and parse_bool(2)[1]
    assert [parse_int(v)[0] for v in (2, "3", 4.0, " 5 ", "6.00")] == [2, 3, 4, 5, 6]
    for bad in ("2.5", 2.5, "x", 2**70, True, [1]):
        assert parse_int(bad) == (None, parse_int(bad)[1]) and parse_int(bad)[1]


# ------------------------------------------------------------------ properties

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(),
    st.text(alphabet="0123456789.-+eE gGkKlLbBoOzZmMcCiInNfFtTuUsSdD$"),
)
raw_values = st.one_of(
    json_scalars,
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)

SCALARS = {
    "money": parse_money,
    "weight": parse_weight_g,
    "length": parse_length_m,
    "datetime": parse_datetime,
    "bool": parse_bool,
    "int": parse_int,
}


@settings(max_examples=300, deadline=None)
@given(raw=raw_values)
def test_scalar_parsers_never_raise(raw: Any) -> None:
    for parse in SCALARS.values():
        value, error = parse(raw)
        assert value is None or error is None
        assert error is None or isinstance(error, str)


@settings(max_examples=60, deadline=None)
@given(values=st.lists(raw_values, max_size=20))
def test_column_parsers_equal_scalar(values: list[Any]) -> None:
    amounts, currencies, errors = parsing.money_list(list(values))
    expected = [parse_money(v) for v in values]
    got = [
        (Money(a, c) if a is not None else None, e)
        for a, c, e in zip(amounts, currencies, errors, strict=True)
    ]
    assert got == expected
    for column, scalar in (
        (parsing.weight_g_list, parse_weight_g),
        (parsing.length_m_list, parse_length_m),
        (parsing.datetime_list, parse_datetime),
        (parsing.bool_list, parse_bool),
        (parsing.int_list, parse_int),
        (parsing.text_list, parse_text),
    ):
        result_values, result_errors = column(list(values))
        assert list(zip(result_values, result_errors, strict=True)) == [
            scalar(v) for v in values
        ], column.__name__


@settings(max_examples=200, deadline=None)
@given(
    amount=st.decimals(
        min_value=-(10**12), max_value=10**12, places=2, allow_nan=False, allow_infinity=False
    ),
    currency=st.sampled_from(sorted(parsing.ISO_CURRENCIES)),
)
def test_money_round_trip(amount: Decimal, currency: str) -> None:
    assert parse_money(f"{amount} {currency}") == (Money(amount, currency), None)


@settings(max_examples=200, deadline=None)
@given(
    number=st.decimals(
        min_value=0, max_value=10**9, places=4, allow_nan=False, allow_infinity=False
    ),
    unit=st.sampled_from(sorted(parsing.GRAMS_PER_UNIT)),
)
def test_weight_round_trip(number: Decimal, unit: str) -> None:
    value, error = parse_weight_g(f"{number} {unit.upper()}")
    assert error is None and value == number * parsing.GRAMS_PER_UNIT[unit]


@settings(max_examples=200, deadline=None)
@given(
    moment=st.datetimes(
        # rc_extract.format_api_datetime does not zero-pad years < 1000 (strftime %Y).
        min_value=datetime(1000, 1, 1),
        max_value=datetime(9999, 12, 30),
        timezones=st.just(UTC),
    )
)
def test_datetime_round_trip(moment: datetime) -> None:
    text = format_api_datetime(moment)
    assert parse_datetime(text) == (moment, None)
    assert parsing.datetime_list([text]) == ([moment], [None])


@settings(max_examples=100, deadline=None)
@given(value=st.integers(min_value=-(2**63) + 1, max_value=2**63 - 1))
def test_int_round_trip(value: int) -> None:
    assert parse_int(str(value)) == (value, None)
    assert parse_int(value) == (value, None)
