"""Derived columns: ISO country codes, item line kinds and exact integer money (vectorized).

Pure functions over pandas Series/DataFrames, called from the typing step of
warehouse.normalize; each returns the derived values plus a mask of the rows whose source
value was present but could not be derived (the caller turns those into load issues).
"""

from __future__ import annotations

import gettext
import os
import re
import unicodedata
from decimal import Decimal
from functools import cache
from typing import Any

import pandas as pd
import pycountry

# ----------------------------------------------------------------------------- countries

# Names people write that ISO 3166-1 (and its translations in pycountry) does not list.
COUNTRY_ALIASES = {
    "uk": "GB",
    "great britain": "GB",
    "britain": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "northern ireland": "GB",
    "america": "US",
    "united states of america": "US",
    "holland": "NL",
    "turkey": "TR",
    "vietnam": "VN",
    "south korea": "KR",
    "north korea": "KP",
    "russia": "RU",
    "czech republic": "CZ",
    "ivory coast": "CI",
    "macedonia": "MK",
    "swaziland": "SZ",
    "burma": "MM",
    "cape verde": "CV",
    "east timor": "TL",
    "laos": "LA",
    "syria": "SY",
    "iran": "IR",
    "moldova": "MD",
    "tanzania": "TZ",
    "bolivia": "BO",
    "venezuela": "VE",
    "taiwan": "TW",
    "vatican": "VA",
    "vatican city": "VA",
    "palestine": "PS",
    "brunei": "BN",
    "россия": "RU",
}
# Languages whose country names are recognised besides English: the languages of the
# larger e-commerce markets (pycountry ships ~160; fewer catalogues load faster and make
# fewer cross-language collisions).
LANGUAGES = (
    "ar", "bg", "cs", "da", "de", "el", "es", "et", "fa", "fi", "fr", "ga", "he", "hi", "hr",
    "hu", "id", "is", "it", "ja", "ko", "lt", "lv", "ms", "nb_NO", "nl", "pl", "pt", "pt_BR",
    "ro", "ru", "sk", "sl", "sr", "sv", "th", "tr", "uk", "vi", "zh_CN", "zh_TW",
)  # fmt: skip
_DROP = re.compile("[.\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
_NOISE = re.compile("[,'\u2019()\\-_/]+")
_SPACES = re.compile(r"\s+")


def country_key(text: str) -> str:
    """The lookup form of a country text: accents, dots and punctuation dropped, casefolded."""
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text)
    return _SPACES.sub(" ", _NOISE.sub(" ", _DROP.sub("", text))).strip().casefold()


def _translations() -> list[gettext.NullTranslations]:
    """pycountry's ISO 3166-1 name catalogues for LANGUAGES (those it ships)."""
    found: list[gettext.NullTranslations] = []
    base = pycountry.LOCALES_DIR
    for language in LANGUAGES:
        if os.path.exists(os.path.join(base, language, "LC_MESSAGES", "iso3166-1.mo")):
            found.append(gettext.translation("iso3166-1", base, languages=[language]))
    return found


@cache
def _english_index() -> tuple[dict[str, str], tuple[tuple[str, str], ...]]:
    """Lookup key -> alpha-2 from codes, English names and aliases; and the (name, code) list."""
    index: dict[str, str] = {}
    names: list[tuple[str, str]] = []
    for country in pycountry.countries:
        code = country.alpha_2
        for attr in ("alpha_2", "alpha_3", "name", "official_name", "common_name"):
            value = getattr(country, attr, None)
            if value:
                index.setdefault(country_key(value), code)
                if attr not in ("alpha_2", "alpha_3"):
                    names.append((value, code))
    for key, code in COUNTRY_ALIASES.items():
        index.setdefault(key, code)
    index.pop("", None)
    return index, tuple(names)


@cache
def country_index() -> dict[str, str]:
    """Lookup key -> alpha-2 code: codes, English names, aliases, then the translations.

    English names, codes and aliases win; a translated name that two countries share in
    different languages is left out (ambiguous), so it is reported rather than guessed.
    """
    english, names = _english_index()
    index = dict(english)
    translated: dict[str, set[str]] = {}
    for catalogue in _translations():
        for name, code in names:
            local = catalogue.gettext(name)
            if local != name:
                translated.setdefault(country_key(local), set()).add(code)
    for key, codes in translated.items():
        if key and key not in index and len(codes) == 1:
            index[key] = next(iter(codes))
    return index


def lookup_country(text: str) -> str | None:
    """The alpha-2 code a country text names, or None (translations loaded only if needed)."""
    key = country_key(text)
    code = _english_index()[0].get(key)
    return code if code is not None else country_index().get(key)


def derive_country_codes(countries: pd.Series) -> tuple[pd.Series, pd.Series]:
    """ISO 3166-1 alpha-2 codes for free-text countries: (codes, bad_mask).

    Blank or missing text gives NULL and is not bad; text that names no country (or more
    than one) gives NULL and is bad.
    """
    lookup: dict[Any, Any] = {}
    for value in pd.unique(countries.to_numpy(dtype=object)):
        if isinstance(value, str) and value.strip():
            lookup[value] = lookup_country(value)
    codes = countries.map(lambda v: lookup.get(v) if isinstance(v, str) else None)
    given = countries.map(lambda v: isinstance(v, str) and bool(v.strip()))
    bad = given & codes.isna()
    return codes.astype(object).where(codes.notna(), None), bad.astype(bool)


# ----------------------------------------------------------------------------- line kinds

GOODS, DISCOUNT, TAX, SHIPPING, ADJUSTMENT, OTHER = (
    "goods",
    "discount",
    "tax",
    "shipping",
    "adjustment",
    "other",
)
LINE_KINDS = (GOODS, DISCOUNT, TAX, SHIPPING, ADJUSTMENT, OTHER)
# Source `kind` values (API: goods, discount, tax, adjustment) and the usual synonyms.
KIND_SYNONYMS = {
    "goods": GOODS,
    "good": GOODS,
    "product": GOODS,
    "item": GOODS,
    "merchandise": GOODS,
    "discount": DISCOUNT,
    "coupon": DISCOUNT,
    "promotion": DISCOUNT,
    "promo": DISCOUNT,
    "rebate": DISCOUNT,
    "tax": TAX,
    "sales tax": TAX,
    "vat": TAX,
    "gst": TAX,
    "hst": TAX,
    "pst": TAX,
    "duty": TAX,
    "shipping": SHIPPING,
    "freight": SHIPPING,
    "handling": SHIPPING,
    "shipping and handling": SHIPPING,
    "delivery": SHIPPING,
    "adjustment": ADJUSTMENT,
}


def _kind_key(value: str) -> str:
    return _SPACES.sub(" ", value.replace("_", " ").replace("&", " and ")).strip().casefold()


def classify_line_kinds(items: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """The line kind of each item row from `kind` and `unit_price`: (line_kinds, unknown_mask).

    A known kind (or synonym) maps to goods/discount/tax/shipping/adjustment; a missing kind
    is goods (ReadyCloud leaves product lines' kind null) unless the unit price is negative
    (adjustment); any other kind is `other` and flagged.
    """
    kinds = items["kind"] if "kind" in items else pd.Series([None] * len(items), dtype=object)
    prices = (
        items["unit_price"]
        if "unit_price" in items
        else pd.Series([None] * len(items), dtype=object)
    )
    lookup: dict[Any, str] = {}
    for value in pd.unique(kinds.to_numpy(dtype=object)):
        if isinstance(value, str) and value.strip():
            lookup[value] = KIND_SYNONYMS.get(_kind_key(value), OTHER)
    named = kinds.map(lambda v: lookup.get(v) if isinstance(v, str) else None)
    negative = prices.map(lambda p: p is not None and not _is_na(p) and p < 0)
    missing = named.isna()
    result = named.where(~missing, negative.map(lambda n: ADJUSTMENT if n else GOODS))
    unknown = (~missing) & (named == OTHER)
    result.index = items.index
    return result.astype(object), unknown.astype(bool).set_axis(items.index)


def _is_na(value: Any) -> bool:
    return isinstance(value, float) and value != value


# ----------------------------------------------------------------------------- money

# Exact integer money: every amount also as an integer count of millionths of its currency
# unit (`<column>_micros`, the "micros" convention of Google's APIs). One fixed scale for
# every currency (ISO 4217 exponents are 0-4, and unit prices can have fractions of a cent),
# so SQL sums are SUM(x_micros) / 1000000 on both databases with no per-currency table.
MICROS_PER_UNIT = 1_000_000
MICROS_SUFFIX = "_micros"
_MAX_MICROS = 2**63 - 1
_MICRO = Decimal(1).scaleb(-6)


def micros_column(column: str) -> str:
    """The name of the integer twin of a money column."""
    return f"{column}{MICROS_SUFFIX}"


def money_micros(amounts: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Exact integer millionths of each Decimal amount: (micros, bad_mask).

    NULL stays NULL; an amount with more than six decimals, or beyond a 64-bit integer,
    has no exact integer form: NULL and bad.
    """
    micros: list[Any] = []
    bad: list[bool] = []
    for value in amounts.tolist():
        if value is None or _is_na(value):
            micros.append(None)
            bad.append(False)
            continue
        amount = value if isinstance(value, Decimal) else Decimal(str(value))
        scaled = amount.scaleb(6)
        if scaled != scaled.to_integral_value() or abs(scaled) > _MAX_MICROS:
            micros.append(None)
            bad.append(True)
            continue
        micros.append(int(scaled))
        bad.append(False)
    return (
        pd.Series(micros, index=amounts.index, dtype=object),
        pd.Series(bad, index=amounts.index, dtype=bool),
    )


def micros_to_decimal(micros: int | None) -> Decimal | None:
    """The Decimal amount of a micros value (exact)."""
    return None if micros is None else Decimal(micros) * _MICRO


# ----------------------------------------------------------------------------- the hook


def _issues(
    frame: pd.DataFrame,
    mask: pd.Series,
    table: str,
    column: str,
    raw: pd.Series,
    message: Any,
    row_key: str,
) -> list[dict[str, Any]]:
    """Load-issue rows for the flagged rows of `frame` (message: text or value -> text)."""
    from warehouse.parsing import raw_text

    if not bool(mask.any()):
        return []
    rows = []
    for position in mask.to_numpy().nonzero()[0]:
        value = raw.iloc[position]
        rows.append(
            {
                "org_pk": frame["org_pk"].iloc[position],
                "order_pk": frame["order_pk"].iloc[position],
                "table_name": table,
                "row_key": frame[row_key].iloc[position],
                "column_name": column,
                "raw_value": str(value) if isinstance(value, Decimal) else raw_text(value),
                "message": message(value) if callable(message) else message,
            }
        )
    return rows


def add_derived_columns(
    table: str, frame: pd.DataFrame, money_columns: tuple[str, ...], row_key: str
) -> list[dict[str, Any]]:
    """Add the derived columns of `table` to its typed frame (in place); returns load issues.

    Every money column gets `<column>_micros`; addresses get `country_code`; items get
    `line_kind`.
    """
    found: list[dict[str, Any]] = []
    for column in money_columns:
        micros, bad = money_micros(frame[column])
        frame[micros_column(column)] = micros
        found += _issues(
            frame,
            bad,
            table,
            micros_column(column),
            frame[column],
            "amount has more than 6 decimals or is too large for exact integer micros; "
            f"{micros_column(column)} left NULL",
            row_key,
        )
    if table == "addresses":
        codes, bad = derive_country_codes(frame["country"])
        frame["country_code"] = codes
        found += _issues(
            frame,
            bad,
            table,
            "country_code",
            frame["country"],
            lambda v: f"no ISO 3166-1 country found for {v!r}; country_code left NULL",
            row_key,
        )
    elif table == "items":
        kinds, unknown = classify_line_kinds(frame)
        frame["line_kind"] = kinds
        found += _issues(
            frame,
            unknown,
            table,
            "line_kind",
            frame["kind"],
            lambda v: f"unknown item kind {v!r}; line_kind 'other' (not counted as goods)",
            row_key,
        )
    return found
