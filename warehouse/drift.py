"""Schema drift: fields in the stored order documents that no warehouse column maps.

ReadyCloud may add, rename or retype fields. A new or renamed field is not lost (every
document is kept in `orders.raw`), but no column shows it; this module finds such fields
by walking the stored documents against the normalizer's field list, with how many
documents carry each and the first/last `nested_updated_at` of those documents.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from warehouse import models
from warehouse.normalize import ADDRESS_FIELDS, ADDRESS_ROLES, FIELDS, Field

ORDERS = models.orders_table
BATCH = 2_000
BOXES, ITEMS = "boxes[]", "boxes[].items[]"
# Keys rc-sync reads that are not a column of their own: the children arrays and the objects
# whose fields are columns (their own fields are compared one level down).
CONTAINERS = {
    "": {"boxes", "billing", "shipping", "source"},
    "shipping": set(ADDRESS_ROLES),
    BOXES: {"items"},
}


def _mapped(fields: Iterable[Field], prefix: str) -> set[str]:
    """Dotted paths (below `prefix`) that the normalizer copies into a column."""
    base = f"{prefix}." if prefix else ""
    return {base + ".".join(f.path) for f in fields}


def known_fields() -> frozenset[str]:
    """Every document path a column maps, plus the containers that lead to them."""
    known = _mapped(FIELDS["orders"], "")
    known |= _mapped(FIELDS["boxes"], BOXES)
    known |= _mapped(FIELDS["items"], ITEMS)
    for role in ADDRESS_ROLES:
        known |= _mapped(ADDRESS_FIELDS, f"shipping.{role}")
    for parent, children in CONTAINERS.items():
        known |= {f"{parent}.{c}" if parent else c for c in children}
    return frozenset(known)


# Fields of the documented API (API.md and its example responses) that rc-sync keeps in
# `raw` only, on purpose: reported as `documented`, not as drift to act on.
DOCUMENTED_RAW_ONLY = frozenset(
    {
        "notes",
        "relations",
        "boxes[].packaging",
        "boxes[].tracking",
        "boxes[].shipping_docs",
        *(
            f"{ITEMS}.{name}"
            for name in (
                "image_link",
                "link",
                "joint_production",
                "commodity_code",
                "net_cost_code",
                "net_cost_begin_date",
                "net_cost_end_date",
                "export_type_code",
                "preference_criteria_code",
                "producer_info_code",
                "scheduleb_commodity_code",
            )
        ),
    }
)

# Objects whose keys are compared with the field list (a JSON column such as custom_fields
# is mapped whole: its keys are data, not schema).
_DESCEND = {"billing", "shipping", "source", "shipping.ship_to", "shipping.ship_from"}


def unmapped_paths(doc: Any, known: frozenset[str]) -> set[str]:
    """The paths in one order document that no column maps (children as `boxes[].x`)."""
    found: set[str] = set()
    if not isinstance(doc, dict):
        return found

    def walk(obj: dict[str, Any], prefix: str) -> None:
        for key, value in obj.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if path not in known:
                found.add(path)
            elif path in _DESCEND and isinstance(value, dict):
                walk(value, path)

    walk(doc, "")
    boxes = doc.get("boxes")
    for box in boxes if isinstance(boxes, list) else []:
        if not isinstance(box, dict):
            continue
        walk(box, BOXES)
        items = box.get("items")
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict):
                walk(item, ITEMS)
    return found


@dataclass
class DriftField:
    """A document field that no column maps."""

    path: str
    documents: int
    first_seen: datetime | None
    last_seen: datetime | None
    orgs: int

    @property
    def documented(self) -> bool:
        """A documented field rc-sync keeps in raw only (not new)."""
        return self.path in DOCUMENTED_RAW_ONLY


def _rows(
    engine: Engine, orgs: Sequence[str] | None, batch: int
) -> Iterator[tuple[str, str, Any, datetime | None]]:
    """(org_pk, order_pk, raw, nested_updated_at) of the stored orders, in key batches."""
    last: tuple[str, str] | None = None
    while True:
        query = sa.select(
            ORDERS.c.org_pk, ORDERS.c.order_pk, ORDERS.c.raw, ORDERS.c.nested_updated_at
        )
        if orgs:
            query = query.where(ORDERS.c.org_pk.in_(list(orgs)))
        if last is not None:
            query = query.where(sa.tuple_(ORDERS.c.org_pk, ORDERS.c.order_pk) > sa.tuple_(*last))
        query = query.order_by(ORDERS.c.org_pk, ORDERS.c.order_pk).limit(batch)
        with engine.connect() as conn:
            rows = conn.execute(query).all()
        if not rows:
            return
        yield from ((r[0], r[1], r[2], r[3]) for r in rows)
        last = (rows[-1][0], rows[-1][1])


def _latest(
    engine: Engine, orgs: Sequence[str] | None, latest: int
) -> Iterator[tuple[str, str, Any, datetime | None]]:
    """The `latest` most recently changed stored orders (an index scan, for a cheap check)."""
    query = sa.select(ORDERS.c.org_pk, ORDERS.c.order_pk, ORDERS.c.raw, ORDERS.c.nested_updated_at)
    if orgs:
        query = query.where(ORDERS.c.org_pk.in_(list(orgs)))
    query = query.order_by(ORDERS.c.nested_updated_at.desc()).limit(latest)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    yield from ((r[0], r[1], r[2], r[3]) for r in rows)


def schema_drift(
    engine: Engine,
    orgs: Sequence[str] | None = None,
    *,
    latest: int | None = None,
    batch: int = BATCH,
) -> list[DriftField]:
    """Unmapped fields across the stored documents: new ones first, most widespread first.

    With `latest`, only that many most recently changed documents are read (new fields
    arrive with new versions; the Dagster check uses this to stay cheap).
    """
    known = known_fields()
    seen: dict[str, list[Any]] = {}  # path -> [documents, first, last, orgs]
    rows = _rows(engine, orgs, batch) if latest is None else _latest(engine, orgs, latest)
    for org_pk, _, raw, nested in rows:
        for path in unmapped_paths(raw, known):
            entry = seen.get(path)
            if entry is None:
                seen[path] = [1, nested, nested, {org_pk}]
                continue
            entry[0] += 1
            if nested is not None:
                entry[1] = nested if entry[1] is None else min(entry[1], nested)
                entry[2] = nested if entry[2] is None else max(entry[2], nested)
            entry[3].add(org_pk)
    fields = [
        DriftField(path, n, first, last, len(org_set))
        for path, (n, first, last, org_set) in seen.items()
    ]
    return sorted(fields, key=lambda f: (f.documented, -f.documents, f.path))
