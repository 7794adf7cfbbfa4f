"""Scenario 9: property-based tests for every parser (money, weight, length, datetime, pk
from url). On any string they never raise (the url parser raises only its documented
ValueError, and the normalizer's use of it never raises); on valid input they round-trip; the
vectorized parsers agree with their scalar twins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rc_common.paths import parse_object_url
from rc_common.timefmt import format_api_datetime
from warehouse import parsing
from warehouse.parsing import (
    GRAMS_PER_UNIT,
    ISO_CURRENCIES,
    METRES_PER_UNIT,
    Money,
    parse_datetime,
    parse_length_m,
    parse_money,
    parse_weight_g,
)

pytestmark = pytest.mark.reliability

FAST = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SCALARS = {
    "money": parse_money,
    "weight": parse_weight_g,
    "length": parse_length_m,
    "datetime": parse_datetime,
}
# The production column parsers (one implementation each; the normalizer uses these).
COLUMN = {
    "weight": parsing.weight_g_list,
    "length": parsing.length_m_list,
    "datetime": parsing.datetime_list,
}

# Any text, biased towards the shapes the parsers look for.
near_miss = st.one_of(
    st.text(),
    st.text(alphabet="0123456789.,-+eE :TZ", max_size=30),
    st.builds(
        lambda n, u: f"{n} {u}",
        st.text(alphabet="0123456789.-eE", max_size=25),
        st.text(max_size=6),
    ),
    st.builds(
        lambda d: d,
        st.from_regex(
            r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,12})?)?(Z|[+-]\d{2}:?\d{2})?"
        ),
    ),
)
any_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=6,
)


@pytest.mark.parametrize("name", sorted(SCALARS))
@FAST
@given(raw=st.one_of(near_miss, any_json))
def test_parsers_never_raise(name: str, raw: object) -> None:
    value, error = SCALARS[name](raw)
    assert value is None or error is None
    if error is not None:
        assert isinstance(error, str) and error


@pytest.mark.parametrize("name", sorted(COLUMN))
@FAST
@given(raws=st.lists(st.one_of(near_miss, any_json), max_size=8))
def test_column_parsers_agree_with_scalars(name: str, raws: list[object]) -> None:
    values, errors = COLUMN[name](list(raws))
    for i, raw in enumerate(raws):
        value, error = SCALARS[name](raw)
        assert values[i] == value, (raw, values[i], value)
        assert errors[i] == error, (raw, errors[i], error)


@FAST
@given(raws=st.lists(st.one_of(near_miss, any_json), max_size=8))
def test_money_column_agrees_with_scalar(raws: list[object]) -> None:
    amounts, currencies, errors = parsing.money_list(list(raws))
    for i, raw in enumerate(raws):
        money, error = parse_money(raw)
        if money is None:
            assert amounts[i] is None and currencies[i] is None
        else:
            assert amounts[i] == money.amount and currencies[i] == money.currency
        assert errors[i] == error, raw


amounts = st.decimals(
    min_value=Decimal("-999999999999.99"),
    max_value=Decimal("999999999999.99"),
    allow_nan=False,
    allow_infinity=False,
    places=2,
)


@FAST
@given(amount=amounts, currency=st.sampled_from(sorted(ISO_CURRENCIES)), prefix=st.booleans())
def test_money_round_trips(amount: Decimal, currency: str, prefix: bool) -> None:
    text = f"{currency} {amount}" if prefix else f"{amount} {currency}"
    assert parse_money(text) == (Money(amount, currency), None)


quantities = st.decimals(
    min_value=Decimal(0), max_value=Decimal("99999999"), allow_nan=False, places=4
)


@FAST
@given(number=quantities, unit=st.sampled_from(sorted(u for u in GRAMS_PER_UNIT if u)))
def test_weight_round_trips(number: Decimal, unit: str) -> None:
    assert parse_weight_g(f"{number} {unit}") == (number * GRAMS_PER_UNIT[unit], None)


@FAST
@given(number=quantities, unit=st.sampled_from(sorted(u for u in METRES_PER_UNIT if u)))
def test_length_round_trips(number: Decimal, unit: str) -> None:
    assert parse_length_m(f"{number} {unit}") == (number * METRES_PER_UNIT[unit], None)


moments = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
)


@FAST
@given(moment=moments, offset_min=st.integers(-14 * 60, 14 * 60))
def test_datetime_round_trips(moment: datetime, offset_min: int) -> None:
    assert parse_datetime(format_api_datetime(moment)) == (moment, None)
    local = moment.astimezone(UTC).replace(tzinfo=None)
    shifted = local + timedelta(minutes=offset_min)
    sign = "+" if offset_min >= 0 else "-"
    hours, minutes = divmod(abs(offset_min), 60)
    text = f"{shifted.isoformat()}{sign}{hours:02d}:{minutes:02d}"
    if datetime(1, 1, 2) <= shifted <= datetime(9999, 12, 30):
        assert parse_datetime(text) == (moment, None)


pks = st.text(min_size=1, max_size=30).filter(lambda s: s.strip("/") == s or "/" not in s)


@FAST
@given(raw=st.one_of(st.text(), near_miss))
def test_pk_from_url_raises_only_value_error(raw: str) -> None:
    try:
        ref = parse_object_url(raw)
    except ValueError:
        return
    assert ref.org_pk


@FAST
@given(
    org=st.text(min_size=1, max_size=20),
    order=st.text(min_size=1, max_size=20),
    box=st.none() | st.text(min_size=1, max_size=20),
    absolute=st.booleans(),
    query=st.booleans(),
)
def test_pk_from_url_round_trips(
    org: str, order: str, box: str | None, absolute: bool, query: bool
) -> None:
    def q(s: str) -> str:
        return quote(s, safe="")

    path = f"/api/v2/orgs/{q(org)}/orders/{q(order)}/" + (f"boxes/{q(box)}/" if box else "")
    url = ("https://www.readycloud.com" if absolute else "") + path + ("?expand=x" if query else "")
    ref = parse_object_url(url)
    assert (ref.org_pk, ref.order_pk, ref.box_pk, ref.item_pk) == (org, order, box, None)


@FAST
@given(raw=any_json)
def test_normalizer_never_raises_on_any_url(raw: object) -> None:
    from warehouse.normalize import normalize_orders

    docs = [{"url": raw, "nested_updated_at": "2024-01-01T00:00:00Z", "boxes": [{"url": raw}]}]
    batch = normalize_orders("org", docs, datetime(2024, 1, 1, tzinfo=UTC))
    assert batch.org_pk == "org"


# The API's usual shapes (the columnar parsers' vectorized path) and small corruptions of
# them: a character before or after, a newline, an impossible date, years at the bounds.
canonical_shapes = st.one_of(
    st.builds(
        lambda number, currency: f"{number} {currency}",
        st.from_regex(r"\A[0-9]{1,13}(\.[0-9]{1,9})?\Z"),
        st.sampled_from(["USD", "EUR", "JPY", "XYZ", "usd"]),
    ),
    st.from_regex(r"\A[0-9]{1,13}(\.[0-9]{1,9})? ?(g|kg|lbs|oz|m|cm|in|ft|mm|xx)\Z"),
    st.from_regex(
        r"\A(1899|1900|2024|9998|9999)-(02|12|13)-(28|29|30|31)T(23|24):(59|60):(59|60)"
        r"(\.[0-9]{1,7})?(Z|\+00:00|-01:00)\Z"
    ),
    st.sampled_from(["true", " FALSE ", "yes", "No", "1", "0", "maybe"]),
)
corrupted = st.builds(
    lambda text, before, after: f"{before}{text}{after}",
    canonical_shapes,
    st.sampled_from(["", "", "", "x", " ", "1e", "-", "\n"]),
    st.sampled_from(["", "", "", "x", " ", "\n", "0"]),
)
ALL_COLUMNS = {
    "weight": (parsing.weight_g_list, parse_weight_g),
    "length": (parsing.length_m_list, parse_length_m),
    "datetime": (parsing.datetime_list, parse_datetime),
    "bool": (parsing.bool_list, parsing.parse_bool),
    "int": (parsing.int_list, parsing.parse_int),
}


@pytest.mark.parametrize("name", sorted(ALL_COLUMNS))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raws=st.lists(st.one_of(corrupted, corrupted, any_json), max_size=30))
def test_columnar_parsers_exact_on_near_canonical_shapes(name: str, raws: list[object]) -> None:
    """Same values (repr: Decimal scale, tzinfo) and messages as the scalar twin, row by row."""
    column, scalar = ALL_COLUMNS[name]
    values, errors = column(list(raws))
    expected = [scalar(raw) for raw in raws]
    assert repr(list(zip(values, errors, strict=True))) == repr(expected)
    amounts, currencies, money_errors = parsing.money_list(list(raws))
    got = [
        (None if a is None else Money(a, c), e)
        for a, c, e in zip(amounts, currencies, money_errors, strict=True)
    ]
    assert repr(got) == repr([parse_money(raw) for raw in raws])
