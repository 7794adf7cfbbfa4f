"""Turn ReadyCloud order documents into typed rows for orders, boxes, items and addresses.

Pure: no I/O. One plain loop walks the documents once, into columns per table (the source
object of every row and the walker's own columns: keys, hashes); each field's raw values are
then read out as one list per column and typed by the columnar parsers of warehouse.parsing
(pandas factorize + vectorized string/timestamp operations, the scalar twin only for what
those reject). Unparseable values become NULL plus a load issue; nothing in a document makes
this raise.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import repeat
from typing import Any, cast

import msgspec
import pandas as pd

from rc_common.paths import ObjectRef, parse_object_url
from rc_common.tables import TABLE_KEYS
from warehouse import derive, parsing
from warehouse.parsing import BAD_TEXT, clean_text, raw_text

# Bump when normalization changes: content hashes change, so every order is rewritten once.
NORMALIZE_VERSION = 2  # 2: _micros money twins, addresses.country_code, items.line_kind
UNKNOWN_ORDER = "?"

TEXT, DATETIME, MONEY, BOOL, INT, WEIGHT, LENGTH, JSON_LIST, JSON_OBJECT = (
    "text",
    "datetime",
    "money",
    "bool",
    "int",
    "weight",
    "length",
    "json_list",
    "json_object",
)


@dataclass(frozen=True)
class Field:
    """A warehouse column filled from a (dotted) path in the source object."""

    column: str
    path: tuple[str, ...]
    kind: str = TEXT


def _f(column: str, path: str | None = None, kind: str = TEXT) -> Field:
    return Field(column, tuple((path or column).split(".")), kind)


ORDER_FIELDS = (
    _f("url"),
    _f("primary_id"),
    _f("unique_id"),
    _f("order_number"),
    _f("customer_number"),
    _f("po_number"),
    _f("message"),
    _f("terms"),
    _f("ordered_at", kind=DATETIME),
    _f("printed_at", kind=DATETIME),
    _f("created_at", kind=DATETIME),
    _f("updated_at", kind=DATETIME),
    _f("nested_updated_at", kind=DATETIME),
    _f("billing_status", "billing.status"),
    _f("billing_subtotal", "billing.subtotal", MONEY),
    _f("billing_shipping", "billing.shipping", MONEY),
    _f("billing_tax", "billing.tax", MONEY),
    _f("billing_total", "billing.total", MONEY),
    _f("shipping_status", "shipping.status"),
    _f("ship_via", "shipping.ship_via"),
    _f("ship_type", "shipping.ship_type"),
    _f("warehouse", "shipping.warehouse"),
    _f("source_name", "source.name"),
    _f("tags", kind=JSON_LIST),
    _f("custom_fields", kind=JSON_OBJECT),
)
BOX_FIELDS = (
    _f("url"),
    _f("package_type"),
    _f("description"),
    _f("length_m", "length", LENGTH),
    _f("width_m", "width", LENGTH),
    _f("height_m", "height", LENGTH),
    _f("weight_g", "weight", WEIGHT),
    _f("ship_cost", kind=MONEY),
    _f("insured_value", kind=MONEY),
    _f("declared_value", kind=MONEY),
    _f("cod_value", kind=MONEY),
    _f("tracking_number"),
    _f("confirmation_type"),
    _f("insurance_type"),
    _f("cod"),
    _f("shipper_release", kind=BOOL),
    _f("saturday_delivery", kind=BOOL),
    _f("delivered_at", kind=DATETIME),
    _f("created_at", kind=DATETIME),
    _f("updated_at", kind=DATETIME),
    _f("custom_fields", kind=JSON_OBJECT),
)
ITEM_FIELDS = (
    _f("url"),
    _f("kind"),
    _f("quantity", kind=INT),
    _f("part_number"),
    _f("code"),
    _f("description"),
    _f("unit_price", kind=MONEY),
    _f("unit_weight_g", "unit_weight", WEIGHT),
    _f("pick_location"),
    _f("origin_country_code"),
    _f("ean"),
    _f("isbn"),
    _f("ups"),
    _f("custom_fields", kind=JSON_OBJECT),
    _f("created_at", kind=DATETIME),
    _f("updated_at", kind=DATETIME),
)
ADDRESS_FIELDS = (
    _f("first_name"),
    _f("last_name"),
    _f("company"),
    _f("address_1"),
    _f("address_2"),
    _f("city"),
    _f("region"),
    _f("post_code"),
    _f("country"),
    _f("email"),
    _f("phone"),
    _f("residential", kind=BOOL),
    _f("validated", kind=BOOL),
)
ADDRESS_ROLES = ("ship_to", "ship_from")
# Money columns sharing one currency column; the first with a currency sets it.
CURRENCY_GROUPS = {
    "orders": (
        "billing_currency",
        ("billing_total", "billing_subtotal", "billing_shipping", "billing_tax"),
    ),
    "boxes": ("currency", ("ship_cost", "insured_value", "declared_value", "cod_value")),
    "items": ("currency", ("unit_price",)),
}
KEYS = TABLE_KEYS
FIELDS = {
    "orders": ORDER_FIELDS,
    "boxes": BOX_FIELDS,
    "items": ITEM_FIELDS,
    "addresses": ADDRESS_FIELDS,
}
ISSUE_COLUMNS = (
    "org_pk",
    "order_pk",
    "table_name",
    "row_key",
    "column_name",
    "raw_value",
    "message",
)
ROW_KEY = "_row_key"
RAW_JSON = "_raw_json"  # orders: the cleaned canonical JSON text of `raw` (for fast loading)
# SHA-256 of the source object's canonical JSON (a box without its items), NOT salted with the
# normalizer version: what makes a new version in the history tables.
DOC_HASH = "_doc_hash"


def doc_hash(obj: Any) -> str:
    """SHA-256 of an object's canonical JSON text (the history tables' version identity)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass
class NormalizedBatch:
    """Typed rows of one batch of order documents, plus the load issues found."""

    org_pk: str
    synced_at: datetime
    orders: pd.DataFrame
    boxes: pd.DataFrame
    items: pd.DataFrame
    addresses: pd.DataFrame
    issues: pd.DataFrame
    docs_skipped: int = 0
    tables: dict[str, pd.DataFrame] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.tables = {
            "orders": self.orders,
            "boxes": self.boxes,
            "items": self.items,
            "addresses": self.addresses,
        }

    @property
    def order_pks(self) -> list[str]:
        """The order pks in this batch."""
        return [str(pk) for pk in self.orders["order_pk"].tolist()]

    def records(self, table: str) -> list[dict[str, Any]]:
        """Rows of `table` as plain dicts (None for NULL), without private columns."""
        frame = self.tables[table]
        columns = [c for c in frame.columns if not c.startswith("_")]
        return cast(list[dict[str, Any]], frame[columns].to_dict("records"))

    def issue_records(self) -> list[dict[str, Any]]:
        """Issue rows as plain dicts."""
        return cast(list[dict[str, Any]], self.issues.to_dict("records"))


class _Issues:
    """Collects issue rows while walking."""

    def __init__(self, org_pk: str) -> None:
        self.org_pk = org_pk
        self.rows: list[dict[str, Any]] = []

    def add(
        self, order_pk: str, table: str, row_key: str, column: str, raw: Any, message: str
    ) -> None:
        self.rows.append(
            {
                "org_pk": self.org_pk,
                "order_pk": order_pk,
                "table_name": table,
                "row_key": row_key,
                "column_name": column,
                "raw_value": raw_text(raw),
                "message": message,
            }
        )


def canonical_json(doc: Any) -> tuple[str, bool]:
    """Sorted-key compact JSON of `doc` and whether it holds non-finite numbers."""
    text, _, non_finite, _ = _canonical(doc)
    return text, non_finite


def _stdlib_canonical(doc: Any) -> tuple[str, bool]:
    """The reference canonical form: the standard library's encoder (raises like it)."""
    try:
        return json.dumps(
            doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ), False
    except ValueError:
        return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False), True


# The canonical text is msgspec's sorted-key encoding (~4x faster than json.dumps), used only
# when it is byte-identical to the standard library's: msgspec refuses non-str keys and lone
# surrogates (then the stdlib encodes), and the two differ only in how they write floats
# (msgspec: 1e16, 0.00001; stdlib: 1e+16, 1e-05; NaN/Infinity as null), so a document with
# any float is encoded by the stdlib (ReadyCloud sends amounts and quantities as strings).
# tests/warehouse/test_canonical.py checks the equivalence on generated documents.
_SORTED_JSON = msgspec.json.Encoder(order="sorted")
_MSGPACK = msgspec.msgpack.Encoder()
_FLOAT32, _FLOAT64 = b"\xca", b"\xcb"


_Canon = tuple[str, bytes, bool, bool]


def _canonical(doc: Any) -> _Canon:
    """(canonical text, its UTF-8 bytes, holds non-finite numbers, msgspec made it)."""
    data: bytes | None = None
    try:  # anything msgspec refuses (non-str keys, lone surrogates) goes to the reference
        packed = _MSGPACK.encode(doc)
        # no float anywhere: MessagePack marks every float with one of these two bytes (a
        # string or an integer holding one only costs the reference path)
        if _FLOAT32 not in packed and _FLOAT64 not in packed:
            data = _SORTED_JSON.encode(doc)
    except Exception:
        data = None
    if data is not None:
        return data.decode("utf-8"), data, False, True
    text, non_finite = _stdlib_canonical(doc)
    return text, text.encode("utf-8", "surrogatepass"), non_finite, False


def _child_hash(obj: Any, fast: bool) -> str:
    """doc_hash of a box or item of a document whose canonical form msgspec made."""
    if fast:
        return hashlib.sha256(_SORTED_JSON.encode(obj)).hexdigest()
    return doc_hash(obj)


def content_hash(canonical: str) -> str:
    """SHA-256 of the canonical document text, salted with the normalizer version."""
    data = f"rc-sync-normalize-v{NORMALIZE_VERSION}\n{canonical}".encode("utf-8", "surrogatepass")
    return hashlib.sha256(data).hexdigest()


def clean_json(value: Any) -> Any:
    """A copy of a JSON value storable everywhere: NUL/surrogates replaced, NaN/inf -> null."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(str(k)): clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _needs_cleaning(canonical: str, non_finite: bool) -> bool:
    if non_finite or "\\u0000" in canonical or "\x00" in canonical:
        return True
    if canonical.isascii():  # O(1): no surrogate can be in there
        return False
    try:
        canonical.encode("utf-8")  # fails exactly when an unpaired surrogate is present
    except UnicodeEncodeError:
        return True
    return False


def _dig(obj: dict[str, Any], path: tuple[str, ...]) -> tuple[Any, str | None]:
    """Value at `path`; a non-object on the way gives (None, name of the broken parent)."""
    value: Any = obj
    for depth, key in enumerate(path):
        if value is None:
            return None, None
        if not isinstance(value, dict):
            return None, ".".join(path[:depth])
        value = value.get(key)
    return value, None


# The usual shape of an object url (absolute or host-relative, nothing to unquote): parsed
# directly, with the same result as parse_object_url; anything else goes through it.
_SEGMENT = r"([^/?#%;\s\\]+)"
_FAST_URL = re.compile(
    rf"(?:https?://[^/?#@\s\\]+)?/api/v2/orgs/{_SEGMENT}/orders/{_SEGMENT}/"
    rf"(?:boxes/{_SEGMENT}/(?:items/{_SEGMENT}/)?)?",
    re.ASCII,
)


def _ref(url: Any) -> ObjectRef | None:
    if not isinstance(url, str):
        return None
    match = _FAST_URL.fullmatch(url)
    if match is not None:
        return ObjectRef(*match.groups())
    try:
        return parse_object_url(url)
    except ValueError:
        return None


def _clean_pk(
    pk: str, issues: _Issues, order_pk: str, table: str, row_key: str, column: str
) -> str:
    if BAD_TEXT.search(pk):
        issues.add(
            order_pk,
            table,
            row_key,
            column,
            pk,
            "NUL or invalid characters in pk replaced by U+FFFD",
        )
        return clean_text(pk)
    return pk


# The walker's own columns per table (besides org_pk), in the order `_Columns.add` takes them.
_WALKED = {
    "orders": ("order_pk", ROW_KEY, "content_hash", DOC_HASH, "raw", RAW_JSON),
    "addresses": ("order_pk", "role", ROW_KEY),
    "boxes": ("order_pk", "box_pk", ROW_KEY, DOC_HASH),
    "items": ("order_pk", "box_pk", "item_pk", ROW_KEY, DOC_HASH),
}


def _parents(fields: tuple[Field, ...]) -> tuple[tuple[str, ...], ...]:
    """The distinct parent paths of a table's nested fields (billing, shipping, source)."""
    return tuple(dict.fromkeys(f.path[:-1] for f in fields if len(f.path) > 1))


PARENTS = {table: _parents(fields) for table, fields in FIELDS.items()}


class _Columns:
    """One table's walked rows as columns: the source objects, and the walker's own columns.

    The field columns are read from the objects column by column when typing (`raw`), so
    no per-row dict is ever built.
    """

    def __init__(self, table: str) -> None:
        self.objs: list[dict[str, Any]] = []
        self.walked: dict[str, list[Any]] = {c: [] for c in _WALKED[table]}
        self._appends = [column.append for column in self.walked.values()]
        # (row, column, value): field values replaced at walk time (a cleaned JSON column)
        self.overrides: list[tuple[int, str, Any]] = []

    def add(self, obj: dict[str, Any], *values: Any) -> None:
        """One row: its source object and the walker's values (in `_WALKED` order)."""
        self.objs.append(obj)
        for append, value in zip(self._appends, values, strict=True):
            append(value)

    def __len__(self) -> int:
        return len(self.objs)

    def truncate(self, n: int) -> None:
        """Drop the rows after the first n (an order that could not be walked)."""
        del self.objs[n:]
        for column in self.walked.values():
            del column[n:]
        self.overrides = [o for o in self.overrides if o[0] < n]

    def raw(self, spec: Field) -> list[Any]:
        """The raw values of one field, one per row (C-level `dict.get` for top-level fields)."""
        if len(spec.path) == 1:
            values = list(map(dict.get, self.objs, repeat(spec.path[0])))
        else:
            values = [_dig(obj, spec.path)[0] for obj in self.objs]
        for index, column, value in self.overrides:
            if column == spec.column:
                values[index] = value
        return values


def _broken(obj: dict[str, Any], parents: tuple[tuple[str, ...], ...]) -> list[str]:
    """The dotted parents of nested fields that are not objects (in field order)."""
    broken: list[str] = []
    for parent in parents:
        _, bad = _dig(obj, (*parent, ""))
        if bad and bad not in broken:
            broken.append(bad)
    return broken


def _as_list(value: Any) -> list[Any] | None:
    if value is None:
        return []
    return value if isinstance(value, list) else None


class _Walker:
    """Walks order documents once, into columns per table (`_Columns`)."""

    def __init__(self, org_pk: str) -> None:
        self.org_pk = org_pk
        self.issues = _Issues(org_pk)
        self.tables: dict[str, _Columns] = {t: _Columns(t) for t in KEYS}
        self.skipped = 0
        self._fast = False  # the current order's canonical form came from msgspec

    def skip(self, doc: Any, canonical: str | None, message: str) -> None:
        self.skipped += 1
        digest = content_hash(canonical) if canonical is not None else "unhashable"
        url = doc.get("url") if isinstance(doc, dict) else doc
        self.issues.add(UNKNOWN_ORDER, "orders", f"doc:{digest[:16]}", "url", url, message)

    def order(self, doc: dict[str, Any], order_pk: str, canon: _Canon) -> None:
        canonical, data, non_finite, self._fast = canon
        issues = self.issues
        orders = self.tables["orders"]
        for parent in _broken(doc, PARENTS["orders"]):
            issues.add(
                order_pk,
                "orders",
                "",
                parent,
                _dig(doc, tuple(parent.split(".")))[0],
                "expected an object",
            )
        # == content_hash(canonical) and doc_hash(doc), from the bytes made once
        salt = f"rc-sync-normalize-v{NORMALIZE_VERSION}\n".encode()
        digest = hashlib.sha256(salt + data).hexdigest()
        identity = hashlib.sha256(data).hexdigest()
        if _needs_cleaning(canonical, non_finite):
            raw = clean_json(doc)
            text = json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            issues.add(
                order_pk,
                "orders",
                "",
                "raw",
                None,
                "document held NUL/unpaired-surrogate characters (replaced by U+FFFD) "
                "or non-finite numbers (replaced by null)",
            )
            for spec in ORDER_FIELDS:
                if spec.kind in (JSON_LIST, JSON_OBJECT):
                    value = clean_json(_dig(doc, spec.path)[0])
                    orders.overrides.append((len(orders), spec.column, value))
            orders.add(doc, order_pk, "", digest, identity, raw, text)
        else:
            orders.add(doc, order_pk, "", digest, identity, doc, canonical)
        self._addresses(doc, order_pk)
        self._boxes(doc, order_pk)

    def _addresses(self, doc: dict[str, Any], order_pk: str) -> None:
        shipping = doc.get("shipping")
        if not isinstance(shipping, dict):
            return  # a non-object `shipping` is already reported by the order row
        for role in ADDRESS_ROLES:
            address = shipping.get(role)
            if address is None:
                continue
            if not isinstance(address, dict):
                self.issues.add(
                    order_pk,
                    "addresses",
                    role,
                    "role",
                    address,
                    f"shipping.{role} is not an object",
                )
                continue
            self.tables["addresses"].add(address, order_pk, role, role)

    def _boxes(self, doc: dict[str, Any], order_pk: str) -> None:
        for box, box_pk, _ in self._children(doc, order_pk, None):
            shell = {k: v for k, v in box.items() if k != "items"}
            for parent in _broken(box, PARENTS["boxes"]):
                self.issues.add(order_pk, "boxes", box_pk, parent, None, "expected an object")
            self.tables["boxes"].add(box, order_pk, box_pk, box_pk, _child_hash(shell, self._fast))
            self._items(box, order_pk, box_pk)

    def _items(self, box: dict[str, Any], order_pk: str, box_pk: str) -> None:
        for item, item_pk, row_key in self._children(box, order_pk, box_pk):
            for parent in _broken(item, PARENTS["items"]):
                self.issues.add(order_pk, "items", row_key, parent, None, "expected an object")
            digest = _child_hash(item, self._fast)
            self.tables["items"].add(item, order_pk, box_pk, item_pk, row_key, digest)

    def _children(
        self, parent: dict[str, Any], order_pk: str, box_pk: str | None
    ) -> Iterator[tuple[dict[str, Any], str, str]]:
        """The usable, distinct boxes of an order (box_pk None) or items of a box.

        Yields (object, pk, row_key); every object skipped gets a load issue saying why.
        """
        if box_pk is None:
            key, table, noun, a_noun, owner = "boxes", "boxes", "box", "a box", "order"
            parent_table, parent_key, prefix = "orders", "", ""
        else:
            key, table, noun, a_noun, owner = "items", "items", "item", "an item", "box"
            parent_table, parent_key, prefix = "boxes", box_pk, f"{box_pk}/"
        children = _as_list(parent.get(key))
        if children is None:
            self.issues.add(
                order_pk, parent_table, parent_key, key, parent.get(key), f"{key} is not an array"
            )
            return
        seen: set[str] = set()
        for index, child in enumerate(children):
            where = f"{prefix}{key}[{index}]"
            if not isinstance(child, dict):
                self.issues.add(order_pk, table, where, "url", child, f"{noun} is not an object")
                continue
            url = child.get("url")
            ref = _ref(url)
            raw_pk = None if ref is None else (ref.box_pk if box_pk is None else ref.item_pk)
            if ref is None or raw_pk is None or (box_pk is None and ref.item_pk is not None):
                message = f"{noun} url is not {a_noun} url; {noun} skipped"
                self.issues.add(order_pk, table, where, "url", url, message)
                continue
            if (
                ref.org_pk != self.org_pk
                or clean_text(ref.order_pk or "") != order_pk
                or (box_pk is not None and clean_text(ref.box_pk or "") != box_pk)
            ):
                message = f"{noun} url belongs to another {owner}; {noun} skipped"
                self.issues.add(order_pk, table, where, "url", url, message)
                continue
            pk = _clean_pk(raw_pk, self.issues, order_pk, table, where, f"{noun}_pk")
            row_key = f"{prefix}{pk}"
            if pk in seen:
                message = f"duplicate {noun} in {owner}; first kept"
                self.issues.add(order_pk, table, row_key, "url", url, message)
                continue
            seen.add(pk)
            yield child, pk, row_key


def _select_documents(
    org_pk: str, docs: list[Any], walker: _Walker
) -> list[tuple[dict[str, Any], str, _Canon]]:
    """Identify each document; skip unusable ones; keep the newest of duplicate orders."""
    chosen: dict[str, tuple[dict[str, Any], str, _Canon, datetime | None]] = {}
    for doc in docs:
        canonical: str | None = None
        try:
            canon = _canonical(doc)
            canonical = canon[0]
        except (TypeError, ValueError, RecursionError) as exc:
            walker.skip(
                doc, None, f"document is not serializable as JSON ({type(exc).__name__}); skipped"
            )
            continue
        if not isinstance(doc, dict):
            walker.skip(doc, canonical, "order document is not an object; skipped")
            continue
        ref = _ref(doc.get("url"))
        if ref is None or ref.order_pk is None or ref.box_pk is not None:
            walker.skip(doc, canonical, "order url missing or not an order url; order skipped")
            continue
        if ref.org_pk != org_pk:
            walker.skip(
                doc,
                canonical,
                f"order url belongs to org {ref.org_pk!r}, not {org_pk!r}; order skipped",
            )
            continue
        order_pk = ref.order_pk
        if BAD_TEXT.search(order_pk):
            walker.issues.add(
                clean_text(order_pk),
                "orders",
                "",
                "order_pk",
                order_pk,
                "NUL or invalid characters in pk replaced by U+FFFD",
            )
            order_pk = clean_text(order_pk)
        nested, _ = parsing.parse_datetime_fast(doc.get("nested_updated_at"))
        previous = chosen.get(order_pk)
        if (
            previous is not None
            and previous[3] is not None
            and (nested is None or nested < previous[3])
        ):
            continue
        chosen[order_pk] = (doc, order_pk, canon, nested)
    return [(d, pk, c) for d, pk, c, _ in chosen.values()]


def _empty_issues() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype=object) for c in ISSUE_COLUMNS})


_LIST_PARSERS = {
    DATETIME: parsing.datetime_list,
    BOOL: parsing.bool_list,
    INT: parsing.int_list,
    WEIGHT: parsing.weight_g_list,
    LENGTH: parsing.length_m_list,
}
_CLEANED = "NUL or unpaired surrogate characters replaced by U+FFFD"


def _type_table(
    table: str,
    walked: _Columns,
    org_pk: str,
    synced_at: datetime,
    extra: tuple[str, ...],
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Type one table column by column: each field's raw values as a list, typed by the
    columnar parsers of warehouse.parsing; pandas holds the result."""
    fields = FIELDS[table]
    keys = KEYS[table]
    n = len(walked)
    found: list[dict[str, Any]] = []
    row_keys = walked.walked[ROW_KEY]
    order_pks = walked.walked["order_pk"]

    def note(column: str, raw: list[Any], errors: list[Any]) -> None:
        if not any(errors):  # the usual case: no error in the column
            return
        for index, message in enumerate(errors):
            if message is not None:
                found.append(
                    {
                        "org_pk": org_pk,
                        "order_pk": order_pks[index],
                        "table_name": table,
                        "row_key": row_keys[index],
                        "column_name": column,
                        "raw_value": raw_text(raw[index]),
                        "message": message,
                    }
                )

    typed: dict[str, list[Any]] = {}
    currencies: dict[str, list[Any]] = {}
    raws: dict[str, list[Any]] = {}
    for spec in fields:
        raw = walked.raw(spec)
        raws[spec.column] = raw
        if spec.kind == TEXT:
            values, errors = parsing.text_list(raw)
            note(spec.column, raw, errors)
            if parsing.any_bad_text(values):
                cleaned_errors: list[Any] = [None] * n
                for index, value in enumerate(values):
                    if type(value) is str and BAD_TEXT.search(value) is not None:
                        values[index] = clean_text(value)
                        cleaned_errors[index] = _CLEANED
                note(spec.column, raw, cleaned_errors)
            typed[spec.column] = values
        elif spec.kind == MONEY:
            amounts, currency, errors = parsing.money_list(raw)
            note(spec.column, raw, errors)
            typed[spec.column] = amounts
            currencies[spec.column] = currency
        elif spec.kind in (JSON_LIST, JSON_OBJECT):
            expected = list if spec.kind == JSON_LIST else dict
            message = "expected an array" if spec.kind == JSON_LIST else "expected an object"
            if parsing.only_types(raw, frozenset({expected, type(None)})):
                typed[spec.column] = list(raw)
                continue
            values = []
            errors = []
            for value in raw:
                if value is not None and not isinstance(value, expected):
                    values.append(None)
                    errors.append(message)
                else:
                    values.append(value)
                    errors.append(None)
            note(spec.column, raw, errors)
            typed[spec.column] = values
        else:
            values, errors = _LIST_PARSERS[spec.kind](raw)
            note(spec.column, raw, errors)
            typed[spec.column] = values
    if table in CURRENCY_GROUPS:
        currency_column, money_columns = CURRENCY_GROUPS[table]
        chosen: list[Any] = [None] * n
        for column in money_columns:
            own = currencies[column]
            chosen = [c if c is not None else o for c, o in zip(chosen, own, strict=True)]
        for column in money_columns:
            own = currencies[column]
            messages: list[Any] = [None] * n
            clash = False
            for index, (o, c) in enumerate(zip(own, chosen, strict=True)):
                if o is not None and c is not None and o != c:
                    messages[index] = (
                        f"currency {o} differs from {currency_column} {c}; amount not stored"
                    )
                    clash = True
            if clash:
                note(column, raws[column], messages)
                typed[column] = [
                    None if m is not None else v
                    for v, m in zip(typed[column], messages, strict=True)
                ]
        typed[currency_column] = chosen
    data: dict[str, list[Any]] = {
        k: [org_pk] * n if k == "org_pk" else list(walked.walked[k]) for k in keys
    }
    for column, values in typed.items():
        data[column] = values  # the column parsers never give NaN, only None
    for column in extra:
        data[column] = walked.walked[column]
    data["synced_at"] = [synced_at] * n
    data[ROW_KEY] = row_keys
    return pd.DataFrame(data, dtype=object), found


def normalize_orders(
    org_pk: str, docs: list[dict[str, Any]], synced_at: datetime
) -> NormalizedBatch:
    """Walk and type a batch of order documents (expanded with boxes and items); pure, never raises on content."""
    if synced_at.tzinfo is None:
        raise ValueError("synced_at must be timezone-aware")
    walker = _Walker(org_pk)
    for doc, order_pk, canon in _select_documents(org_pk, docs, walker):
        before = {t: len(c) for t, c in walker.tables.items()}
        issues_before = len(walker.issues.rows)
        try:
            walker.order(doc, order_pk, canon)
        except RecursionError:
            for table, count in before.items():
                walker.tables[table].truncate(count)
            del walker.issues.rows[issues_before:]
            walker.skip(doc, canon[0], "order document nested too deeply; skipped")
    frames: dict[str, pd.DataFrame] = {}
    issue_rows: list[dict[str, Any]] = list(walker.issues.rows)
    for table in KEYS:
        extra: tuple[str, ...] = ()
        if table == "orders":
            extra = ("raw", RAW_JSON, "content_hash", DOC_HASH)
        elif table in ("boxes", "items"):
            extra = (DOC_HASH,)
        frames[table], found = _type_table(table, walker.tables[table], org_pk, synced_at, extra)
        issue_rows.extend(found)
        # Derived columns (warehouse.derive): money micros, country codes, line kinds.
        money = tuple(f.column for f in FIELDS[table] if f.kind == MONEY)
        issue_rows.extend(derive.add_derived_columns(table, frames[table], money, ROW_KEY))
    if issue_rows:
        unique: dict[tuple[Any, ...], dict[str, Any]] = {}
        for row in issue_rows:  # the first issue per (org, order, table, row, column) wins
            unique.setdefault(tuple(row[c] for c in ISSUE_COLUMNS[:5]), row)
        issues = pd.DataFrame(
            {c: [row[c] for row in unique.values()] for c in ISSUE_COLUMNS}, dtype=object
        )
    else:
        issues = _empty_issues()
    return NormalizedBatch(
        org_pk=org_pk,
        synced_at=synced_at,
        orders=frames["orders"],
        boxes=frames["boxes"],
        items=frames["items"],
        addresses=frames["addresses"],
        issues=issues,
        docs_skipped=walker.skipped,
    )
