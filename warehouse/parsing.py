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
    """Text verbatim; numbers and booleans as their JSON text; objects/arrays as JSON + error."""
    if raw is None:
        return None, None
    if isinstance(raw, str):
        return raw, None
    if isinstance(raw, bool):
        return ("true" if raw else "false"), None
    if isinstance(raw, int | float | Decimal):
        return _number_text(raw) or str(raw), None
    text = raw_text(raw)
    return text, f"expected text, got {_type_name(raw)}; stored as JSON text"


# --------------------------------------------------------------------------- lists (fast path)
#
# The one implementation of each column parser (the normalizer's, and the one the property
# tests check): plain lists in, (values, errors) lists out, one Python loop per column with a
# strict fast path for the API's usual shapes and the scalar twin for everything else, so
# results are identical to the scalar twins. (A pandas-based second set, used only by tests,
# was merged into these: two implementations of one parser drift apart.)

_FAST_DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|\+00:00)", re.ASCII
)
_FAST_MONEY = re.compile(r"(\d{1,12}(?:\.\d{1,8})?) ([A-Z]{3})", re.ASCII)
_FAST_QUANTITY = re.compile(r"(\d{1,12}(?:\.\d{1,8})?) ?([a-z]+)", re.ASCII)
_UTC = UTC
_NONE_PAIR: tuple[None, None] = (None, None)

ParsedList = tuple[list[Any], list[str | None]]


def _is_na(value: Any) -> bool:
    """pandas' notion of missing for JSON values: None or a float NaN."""
    return value is None or (type(value) is float and value != value)


def datetime_list(raw: list[Any]) -> ParsedList:
    """parse_datetime over a list (fast path: the API's canonical '...Z' form)."""
    values: list[Any] = []
    errors: list[str | None] = []
    fast = _FAST_DATETIME.fullmatch
    fromiso = datetime.fromisoformat
    for value in raw:
        if value is None:
            values.append(None)
            errors.append(None)
        else:
            if type(value) is str and fast(value) and "1900" <= value[:4] <= "9998":
                try:
                    values.append(fromiso(value).replace(tzinfo=_UTC))
                    errors.append(None)
                    continue
                except ValueError:
                    pass
            parsed, error = parse_datetime(value)
            values.append(parsed)
            errors.append(error)
    return values, errors


def parse_datetime_fast(raw: Any) -> tuple[datetime | None, str | None]:
    """parse_datetime with datetime_list's fast path, for one value."""
    if type(raw) is str and _FAST_DATETIME.fullmatch(raw) and "1900" <= raw[:4] <= "9998":
        try:
            return datetime.fromisoformat(raw).replace(tzinfo=_UTC), None
        except ValueError:
            pass
    return parse_datetime(raw)


def money_list(raw: list[Any]) -> tuple[list[Any], list[Any], list[str | None]]:
    """parse_money over a list: (amounts, currencies, errors); fast path '70.59 USD'."""
    amounts: list[Any] = []
    currencies: list[Any] = []
    errors: list[str | None] = []
    fast = _FAST_MONEY.fullmatch
    for value in raw:
        if value is None:
            amounts.append(None)
            currencies.append(None)
            errors.append(None)
            continue
        match = fast(value) if type(value) is str else None
        if match is not None and match.group(2) in ISO_CURRENCIES:
            amounts.append(Decimal(match.group(1)))
            currencies.append(match.group(2))
            errors.append(None)
            continue
        money, error = parse_money(value)
        amounts.append(None if money is None else money.amount)
        currencies.append(None if money is None else money.currency)
        errors.append(error)
    return amounts, currencies, errors


def _quantity_list(
    raw: list[Any],
    factors: dict[str, Decimal],
    scalar: Callable[[Any], tuple[Decimal | None, str | None]],
) -> ParsedList:
    values: list[Any] = []
    errors: list[str | None] = []
    fast = _FAST_QUANTITY.fullmatch
    for value in raw:
        if value is None:
            values.append(None)
            errors.append(None)
            continue
        match = fast(value) if type(value) is str else None
        factor = factors.get(match.group(2)) if match is not None else None
        if factor is not None:
            assert match is not None
            product = Decimal(match.group(1)) * factor
            if product < MAX_ABS_DECIMAL:
                values.append(product)
                errors.append(None)
                continue
        parsed, error = scalar(value)
        values.append(parsed)
        errors.append(error)
    return values, errors


def weight_g_list(raw: list[Any]) -> ParsedList:
    """parse_weight_g over a list."""
    return _quantity_list(raw, GRAMS_PER_UNIT, parse_weight_g)


def length_m_list(raw: list[Any]) -> ParsedList:
    """parse_length_m over a list."""
    return _quantity_list(raw, METRES_PER_UNIT, parse_length_m)


_NONE_TYPE: type = type(None)
_STR_OR_NONE: frozenset[type] = frozenset({str, _NONE_TYPE})
_BOOL_OR_NONE: frozenset[type] = frozenset({bool, _NONE_TYPE})
_INT_OR_NONE: frozenset[type] = frozenset({int, _NONE_TYPE})


def only_types(raw: list[Any], allowed: frozenset[type]) -> bool:
    """Whether every value's exact type is in `allowed` (one pass in C)."""
    return set(map(type, raw)) <= allowed


def bool_list(raw: list[Any]) -> ParsedList:
    """parse_bool over a list."""
    if only_types(raw, _BOOL_OR_NONE):
        return list(raw), [None] * len(raw)
    values: list[Any] = []
    errors: list[str | None] = []
    for value in raw:
        if value is None or type(value) is bool:
            values.append(value)
            errors.append(None)
        else:
            parsed, error = parse_bool(value)
            values.append(parsed)
            errors.append(error)
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
    """text_series over a list: strings pass through, None/NaN -> None, the rest parse_text."""
    if only_types(raw, _STR_OR_NONE):
        return list(raw), [None] * len(raw)
    values: list[Any] = []
    errors: list[str | None] = []
    for value in raw:
        if value is None or type(value) is str:
            values.append(value)
            errors.append(None)
        elif type(value) is float and value != value:
            values.append(None)
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
