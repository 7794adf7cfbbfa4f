"""Value parsers for ReadyCloud's wire formats (API.md §7): vectorized over pandas Series.

Every parser has a scalar twin (`parse_*`) with identical results, used by property tests
and for one-off values. Parsers never raise on input: an unparseable non-empty raw value
gives NULL (None) plus an error message for that row; empty values give None, no error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from rc_common.flags import FALSE_WORDS, TRUE_WORDS
from rc_common.timefmt import parse_api_datetime

MAX_RAW_CHARS = 2000
# pandas' pure-Python string storage: holds any Python str (pyarrow storage rejects lone surrogates).
_STR = pd.StringDtype("python")
# Characters PostgreSQL text cannot hold (NUL) or UTF-8 cannot encode (unpaired surrogates).
BAD_TEXT = re.compile("[\x00\ud800-\udfff]")
REPLACEMENT = "\ufffd"
MAX_ABS_DECIMAL = Decimal(10) ** 15
MAX_BIGINT = 2**63 - 1

# ISO 4217 active codes (plus a few widely used funds/precious-metal codes).
ISO_CURRENCIES = frozenset(
    [
        "AED",
        "AFN",
        "ALL",
        "AMD",
        "ANG",
        "AOA",
        "ARS",
        "AUD",
        "AWG",
        "AZN",
        "BAM",
        "BBD",
        "BDT",
        "BGN",
        "BHD",
        "BIF",
        "BMD",
        "BND",
        "BOB",
        "BOV",
        "BRL",
        "BSD",
        "BTN",
        "BWP",
        "BYN",
        "BZD",
        "CAD",
        "CDF",
        "CHE",
        "CHF",
        "CHW",
        "CLF",
        "CLP",
        "CNY",
        "COP",
        "COU",
        "CRC",
        "CUC",
        "CUP",
        "CVE",
        "CZK",
        "DJF",
        "DKK",
        "DOP",
        "DZD",
        "EGP",
        "ERN",
        "ETB",
        "EUR",
        "FJD",
        "FKP",
        "GBP",
        "GEL",
        "GHS",
        "GIP",
        "GMD",
        "GNF",
        "GTQ",
        "GYD",
        "HKD",
        "HNL",
        "HRK",
        "HTG",
        "HUF",
        "IDR",
        "ILS",
        "INR",
        "IQD",
        "IRR",
        "ISK",
        "JMD",
        "JOD",
        "JPY",
        "KES",
        "KGS",
        "KHR",
        "KMF",
        "KPW",
        "KRW",
        "KWD",
        "KYD",
        "KZT",
        "LAK",
        "LBP",
        "LKR",
        "LRD",
        "LSL",
        "LYD",
        "MAD",
        "MDL",
        "MGA",
        "MKD",
        "MMK",
        "MNT",
        "MOP",
        "MRU",
        "MUR",
        "MVR",
        "MWK",
        "MXN",
        "MXV",
        "MYR",
        "MZN",
        "NAD",
        "NGN",
        "NIO",
        "NOK",
        "NPR",
        "NZD",
        "OMR",
        "PAB",
        "PEN",
        "PGK",
        "PHP",
        "PKR",
        "PLN",
        "PYG",
        "QAR",
        "RON",
        "RSD",
        "RUB",
        "RWF",
        "SAR",
        "SBD",
        "SCR",
        "SDG",
        "SEK",
        "SGD",
        "SHP",
        "SLE",
        "SLL",
        "SOS",
        "SRD",
        "SSP",
        "STN",
        "SVC",
        "SYP",
        "SZL",
        "THB",
        "TJS",
        "TMT",
        "TND",
        "TOP",
        "TRY",
        "TTD",
        "TWD",
        "TZS",
        "UAH",
        "UGX",
        "USD",
        "USN",
        "UYI",
        "UYU",
        "UYW",
        "UZS",
        "VED",
        "VES",
        "VND",
        "VUV",
        "WST",
        "XAF",
        "XAG",
        "XAU",
        "XCD",
        "XCG",
        "XDR",
        "XOF",
        "XPD",
        "XPF",
        "XPT",
        "XSU",
        "XUA",
        "YER",
        "ZAR",
        "ZMW",
        "ZWG",
        "ZWL",
    ]
)

GRAMS_PER_UNIT: dict[str, Decimal] = {
    "g": Decimal(1),
    "gr": Decimal(1),
    "gram": Decimal(1),
    "grams": Decimal(1),
    "kg": Decimal(1000),
    "kgs": Decimal(1000),
    "lb": Decimal("453.59237"),
    "lbs": Decimal("453.59237"),
    "oz": Decimal("28.349523125"),
}
METRES_PER_UNIT: dict[str, Decimal] = {
    "m": Decimal(1),
    "cm": Decimal("0.01"),
    "mm": Decimal("0.001"),
    "in": Decimal("0.0254"),
    "inch": Decimal("0.0254"),
    "inches": Decimal("0.0254"),
    "ft": Decimal("0.3048"),
}

_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d{1,4})?"
_MONEY = re.compile(
    rf"^\s*(?:(?P<amount>{_NUMBER})\s*(?P<cur>[A-Za-z]{{3}})?"
    rf"|(?P<cur2>[A-Za-z]{{3}})\s*(?P<amount2>{_NUMBER}))\s*$",
    re.ASCII,
)
_QUANTITY = re.compile(rf"^\s*(?P<number>{_NUMBER})\s*(?P<unit>[A-Za-z]+\.?)?\s*$", re.ASCII)
_INT = re.compile(r"^\s*[+-]?\d+(?:\.0*)?\s*$", re.ASCII)
# The API's usual shape; these go through pandas' vectorized parser, the rest one by one.
_CANONICAL_DATETIME = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?Z$"


class Money(NamedTuple):
    """A parsed money value: exact amount and ISO currency (None when not given)."""

    amount: Decimal
    currency: str | None


# --------------------------------------------------------------------------- helpers


def raw_text(value: Any) -> str | None:
    """A raw value as text for load_issues.raw_value (JSON for non-strings), truncated."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            text = repr(value)
    return clean_text(text[:MAX_RAW_CHARS])


def clean_text(text: str) -> str:
    """Replace NUL and unpaired surrogates (unstorable in PostgreSQL text) by U+FFFD."""
    return BAD_TEXT.sub(REPLACEMENT, text) if BAD_TEXT.search(text) else text


def _is_empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and value != value:  # NaN from pandas
        return True
    return isinstance(value, str) and not value.strip()


def _number_text(value: Any) -> str | None:
    """Text form of a JSON number or a string; None for other types (bool, dict, list)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return (
            repr(value) if value == value and value not in (float("inf"), float("-inf")) else None
        )
    if isinstance(value, Decimal):
        return str(value)
    return None


def _decimal(text: str) -> Decimal | None:
    try:
        number = Decimal(text)
    except (InvalidOperation, ValueError):
        return None
    if not number.is_finite() or abs(number) >= MAX_ABS_DECIMAL:
        return None
    return number


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "an array", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


# --------------------------------------------------------------------------- scalar twins


def parse_money(raw: Any) -> tuple[Money | None, str | None]:
    """'70.59 USD' (or 'USD 70.59', a bare number) -> (Money, None); garbage -> (None, error)."""
    if _is_empty(raw):
        return None, None
    text = _number_text(raw)
    if text is None:
        return None, f"expected a money value like '70.59 USD', got {_type_name(raw)}"
    match = _MONEY.match(text)
    if not match:
        return None, "not a money value (expected an amount and a currency, like '70.59 USD')"
    amount_text = match.group("amount") or match.group("amount2")
    currency = match.group("cur") or match.group("cur2")
    amount = _decimal(amount_text)
    if amount is None:
        return None, "money amount out of range"
    if currency is not None:
        currency = currency.upper()
        if currency not in ISO_CURRENCIES:
            return None, f"unknown currency {currency!r}"
    return Money(amount, currency), None


def _parse_quantity(
    raw: Any, factors: dict[str, Decimal], what: str, example: str
) -> tuple[Decimal | None, str | None]:
    if _is_empty(raw):
        return None, None
    text = _number_text(raw)
    if text is None:
        return None, f"expected a {what} like {example!r}, got {_type_name(raw)}"
    match = _QUANTITY.match(text)
    if not match:
        return None, f"not a {what} (expected a number and a unit, like {example!r})"
    unit = (match.group("unit") or "").lower().rstrip(".")
    factor = factors.get(unit) if unit else Decimal(1)
    if factor is None:
        return None, f"unknown {what} unit {unit!r} (known: {', '.join(sorted(factors))})"
    number = _decimal(match.group("number"))
    if number is None:
        return None, f"{what} out of range"
    if number < 0:
        return None, f"negative {what}"
    value = number * factor
    if abs(value) >= MAX_ABS_DECIMAL:
        return None, f"{what} out of range"
    return value, None


def parse_weight_g(raw: Any) -> tuple[Decimal | None, str | None]:
    """'170.000 g', '1 lbs', '2 KG', '3oz' -> grams; a bare number is taken as grams."""
    return _parse_quantity(raw, GRAMS_PER_UNIT, "weight", "170.000 g")


def parse_length_m(raw: Any) -> tuple[Decimal | None, str | None]:
    """'0.1500 m', '15 cm', '6 in', '1 ft' -> metres; a bare number is taken as metres."""
    return _parse_quantity(raw, METRES_PER_UNIT, "length", "0.1500 m")


def parse_datetime(raw: Any) -> tuple[datetime | None, str | None]:
    """An API timestamp -> aware UTC datetime (rc_common.timefmt.parse_api_datetime rules)."""
    if _is_empty(raw):
        return None, None
    if not isinstance(raw, str):
        return None, f"expected an ISO 8601 date-time string, got {_type_name(raw)}"
    try:
        return parse_api_datetime(raw), None
    except ValueError as exc:
        if str(exc).startswith("not an ISO 8601"):
            return None, "not an ISO 8601 date-time (expected like 2024-05-01T12:00:00Z)"
        return None, f"invalid date-time: {str(exc)[:200]}"
    except OverflowError:
        return None, "date-time out of range"


def parse_bool(raw: Any) -> tuple[bool | None, str | None]:
    """true/false, 'true'/'false', 1/0, 'yes'/'no' (any case) -> bool."""
    if _is_empty(raw):
        return None, None
    if isinstance(raw, bool):
        return raw, None
    if isinstance(raw, int) and raw in (0, 1):
        return bool(raw), None
    if isinstance(raw, str):
        word = raw.strip().lower()
        if word in TRUE_WORDS:
            return True, None
        if word in FALSE_WORDS:
            return False, None
    return None, "not a boolean (expected true or false)"


def parse_int(raw: Any) -> tuple[int | None, str | None]:
    """An integer, '2', 2.0 or '2.00' -> int; fractions, words and huge numbers -> error."""
    if _is_empty(raw):
        return None, None
    if isinstance(raw, bool):
        return None, "expected an integer, got a boolean"
    value: int | None = None
    if isinstance(raw, int):
        value = raw
    elif isinstance(raw, float):
        if raw == raw and raw not in (float("inf"), float("-inf")) and raw.is_integer():
            value = int(raw)
    elif isinstance(raw, str) and len(raw) <= 100 and _INT.match(raw):
        value = int(raw.strip().split(".")[0])
    else:
        if not isinstance(raw, str):
            return None, f"expected an integer, got {_type_name(raw)}"
    if value is None:
        return None, "not an integer"
    if abs(value) > MAX_BIGINT:
        return None, "integer out of range"
    return value, None


def parse_text(raw: Any) -> tuple[str | None, str | None]:
    """Text verbatim; numbers and booleans as their JSON text; objects/arrays as JSON + error.

    None and a float NaN (missing, as for every parser; the text column did so already) are NULL.
    """
    if raw is None or (type(raw) is float and raw != raw):
        return None, None
    if isinstance(raw, str):
        return raw, None
    if isinstance(raw, bool):
        return ("true" if raw else "false"), None
    if isinstance(raw, int | float | Decimal):
        return _number_text(raw) or str(raw), None
    text = raw_text(raw)
    return text, f"expected text, got {_type_name(raw)}; stored as JSON text"


# --------------------------------------------------------------------------- columns
#
# The one implementation of each column parser (the normalizer's, and the one the property
# tests check): a column comes in as a plain list of raw JSON values and goes out as
# (values, errors) lists. The column is typed with pandas: its distinct strings are found by
# `pd.factorize` (hashing in C), and those are checked, split and converted with vectorized
# operations (`Series.str.fullmatch`/`str.extract` for the API's usual shapes, `pd.to_datetime`
# for timestamps, mapping tables for booleans and units); the results are spread back over
# the rows by `numpy.take`. Only values the vectorized path rejects (other shapes, other
# types, errors) go through the scalar twin one by one, so values and error messages are
# exactly the scalar twins'.

_FAST_DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|\+00:00)", re.ASCII
)
# years 1900-9998 only (what the scalar fast path takes; the rest is the scalar twin's)
_FAST_DATETIME_PATTERN = (
    r"(?:19[0-9]{2}|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])"
    r"-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?(?:Z|\+00:00)"
)
# anchored: Series.str.extract searches (\Z, not $: no trailing newline either)
_FAST_MONEY_PATTERN = r"\A([0-9]{1,12}(?:\.[0-9]{1,8})?) ([A-Z]{3})\Z"
_FAST_QUANTITY_PATTERN = r"\A([0-9]{1,12}(?:\.[0-9]{1,8})?) ?([a-z]+)\Z"
_UTC = UTC
_NONE_TYPE: type = type(None)
_STR_OR_NONE: frozenset[type] = frozenset({str, _NONE_TYPE})
_BOOL_OR_NONE: frozenset[type] = frozenset({bool, _NONE_TYPE})
_INT_OR_NONE: frozenset[type] = frozenset({int, _NONE_TYPE})
_BOOL_WORDS: dict[str, bool] = {
    **dict.fromkeys(TRUE_WORDS, True),
    **dict.fromkeys(FALSE_WORDS, False),
}

_CURRENCY_LIST = sorted(ISO_CURRENCIES)

ParsedList = tuple[list[Any], list[str | None]]
# Typing of one column's distinct strings: (values, accepted), arrays with one entry each.
_Vectorized = Callable[[pd.Series], tuple[np.ndarray, np.ndarray]]


def only_types(raw: list[Any], allowed: frozenset[type]) -> bool:
    """Whether every value's exact type is in `allowed` (one pass in C)."""
    return set(map(type, raw)) <= allowed


def _columnar(
    raw: list[Any],
    vectorized: _Vectorized,
    scalar: Callable[[Any], tuple[Any, str | None]],
    width: int = 1,
) -> list[list[Any]]:
    """Type a column: distinct strings through `vectorized`, everything it rejects through `scalar`.

    Returns `width` value lists and the error list; with width > 1 the values are tuples
    (from `vectorized` and from `scalar`) unpacked by position.
    """
    n = len(raw)
    types = set(map(type, raw))
    if types <= {_NONE_TYPE}:
        return [[None] * n for _ in range(width + 1)]
    mixed = not types <= _STR_OR_NONE
    keys = [v if type(v) is str else None for v in raw] if mixed else raw
    codes, uniques = pd.factorize(np.asarray(keys, dtype=object))
    count = len(uniques)
    # one slot per distinct value plus a last one (None) that the missing values (-1) take
    values = np.full(count + 1, None, dtype=object)
    errors = np.full(count + 1, None, dtype=object)
    if count:
        typed, accepted = vectorized(pd.Series(uniques, dtype=object))
        values[:count] = typed
        for index in np.flatnonzero(~accepted).tolist():  # the scalar twin, once per value
            values[index], errors[index] = scalar(uniques[index])
    columns = [values.take(codes).tolist(), errors.take(codes).tolist()]
    if mixed:  # non-string values (numbers, booleans, objects) one by one
        for index, value in enumerate(raw):
            if value is not None and type(value) is not str:
                columns[0][index], columns[1][index] = scalar(value)
    if width == 1:
        return columns
    parts: list[list[Any]] = [[None] * n for _ in range(width)]
    for index, value in enumerate(columns[0]):
        if value is not None:
            for part in range(width):
                parts[part][index] = value[part]
    return [*parts, columns[1]]


def _datetimes(distinct: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """The API's canonical timestamps ('...Z' / '+00:00', years 1900-9998) by pd.to_datetime."""
    values = np.full(len(distinct), None, dtype=object)
    shape = distinct.str.fullmatch(_FAST_DATETIME_PATTERN).to_numpy(dtype=bool)
    if not shape.any():
        return values, shape
    moments = pd.to_datetime(distinct[shape], format="ISO8601", utc=True, errors="coerce")
    valid = moments.notna().to_numpy(dtype=bool)  # an impossible date (Feb 30, :60) is NaT
    chosen = np.flatnonzero(shape)[valid]
    values[chosen] = moments[valid].dt.to_pydatetime().to_numpy(dtype=object)
    accepted = np.zeros(len(distinct), dtype=bool)
    accepted[chosen] = True
    return values, accepted


def datetime_list(raw: list[Any]) -> ParsedList:
    """parse_datetime over a column (vectorized: pd.to_datetime of the canonical forms)."""
    values, errors = _columnar(raw, _datetimes, parse_datetime)
    return values, errors


def parse_datetime_fast(raw: Any) -> tuple[datetime | None, str | None]:
    """parse_datetime with a fast path for the canonical form, for one value."""
    if type(raw) is str and _FAST_DATETIME.fullmatch(raw) and "1900" <= raw[:4] <= "9998":
        try:
            return datetime.fromisoformat(raw).replace(tzinfo=_UTC), None
        except ValueError:
            pass
    return parse_datetime(raw)


def _money(distinct: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """'70.59 USD' split into amount and currency by one regex; currencies checked by isin."""
    parts = distinct.str.extract(_FAST_MONEY_PATTERN)
    shape = parts[1].isin(_CURRENCY_LIST).to_numpy(dtype=bool)
    values = np.full(len(distinct), None, dtype=object)
    for position, amount, currency in zip(
        np.flatnonzero(shape).tolist(),
        parts[0][shape].tolist(),
        parts[1][shape].tolist(),
        strict=True,
    ):
        values[position] = (Decimal(amount), currency)  # one by one: a tuple per cell
    return values, shape


def _money_scalar(raw: Any) -> tuple[tuple[Any, Any], str | None]:
    money, error = parse_money(raw)
    return (None, None) if money is None else (money.amount, money.currency), error


def money_list(raw: list[Any]) -> tuple[list[Any], list[Any], list[str | None]]:
    """parse_money over a column: (amounts, currencies, errors)."""
    amounts, currencies, errors = _columnar(raw, _money, _money_scalar, width=2)
    return amounts, currencies, errors


def _quantities(factors: dict[str, Decimal]) -> _Vectorized:
    def vectorized(distinct: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        parts = distinct.str.extract(_FAST_QUANTITY_PATTERN)
        factor = parts[1].map(factors)  # the unit table; unknown units are NaN
        shape = factor.notna().to_numpy(dtype=bool)
        values = np.full(len(distinct), None, dtype=object)
        accepted = np.zeros(len(distinct), dtype=bool)
        for position, number, scale in zip(
            np.flatnonzero(shape).tolist(),
            parts[0][shape].tolist(),
            factor[shape].tolist(),
            strict=True,
        ):
            product = Decimal(number) * scale
            if product < MAX_ABS_DECIMAL:
                values[position] = product
                accepted[position] = True
        return values, accepted

    return vectorized


_WEIGHTS = _quantities(GRAMS_PER_UNIT)
_LENGTHS = _quantities(METRES_PER_UNIT)


def _quantity_list(
    raw: list[Any],
    vectorized: _Vectorized,
    scalar: Callable[[Any], tuple[Decimal | None, str | None]],
) -> ParsedList:
    values, errors = _columnar(raw, vectorized, scalar)
    return values, errors


def weight_g_list(raw: list[Any]) -> ParsedList:
    """parse_weight_g over a column."""
    return _quantity_list(raw, _WEIGHTS, parse_weight_g)


def length_m_list(raw: list[Any]) -> ParsedList:
    """parse_length_m over a column."""
    return _quantity_list(raw, _LENGTHS, parse_length_m)


def _bool_words(distinct: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """'true'/'no'/... (any case, padded) through the mapping table of boolean words."""
    mapped = distinct.str.strip().str.lower().map(_BOOL_WORDS)
    accepted = mapped.notna().to_numpy(dtype=bool)
    return mapped.astype(object).where(accepted, None).to_numpy(dtype=object), accepted


def bool_list(raw: list[Any]) -> ParsedList:
    """parse_bool over a column (JSON booleans pass as they are)."""
    if only_types(raw, _BOOL_OR_NONE):
        return list(raw), [None] * len(raw)
    values, errors = _columnar(raw, _bool_words, parse_bool)
    return values, errors


def int_list(raw: list[Any]) -> ParsedList:
    """parse_int over a list."""
    if only_types(raw, _INT_OR_NONE):
        ints = [v for v in raw if v is not None]
        if not ints or (min(ints) >= -MAX_BIGINT and max(ints) <= MAX_BIGINT):
            return list(raw), [None] * len(raw)
    values: list[Any] = []
    errors: list[str | None] = []
    for value in raw:
        if value is None or (type(value) is int and -MAX_BIGINT <= value <= MAX_BIGINT):
            values.append(value)
            errors.append(None)
        else:
            parsed, error = parse_int(value)
            values.append(parsed)
            errors.append(error)
    return values, errors


def text_list(raw: list[Any]) -> ParsedList:
    """parse_text over a column: strings pass through (a C-level type check), the rest parse_text."""
    if only_types(raw, _STR_OR_NONE):
        return list(raw), [None] * len(raw)
    values: list[Any] = []
    errors: list[str | None] = []
    for value in raw:
        if value is None or type(value) is str:
            values.append(value)
            errors.append(None)
        else:
            parsed, error = parse_text(value)
            values.append(parsed)
            errors.append(error)
    return values, errors


def any_bad_text(values: list[Any]) -> bool:
    """Whether any string in the list holds NUL or an unpaired surrogate (one regex scan)."""
    if only_types(values, _STR_OR_NONE):
        strings: list[str] = list(filter(None, values))
    else:
        strings = [v for v in values if type(v) is str]
    return bool(strings) and BAD_TEXT.search("\n".join(strings)) is not None
