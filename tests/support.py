"""Test helpers shared across folders: compare a warehouse with the sandbox, column by column."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

KEYS: dict[str, tuple[str, ...]] = {
    "orders": ("org_pk", "order_pk"),
    "boxes": ("org_pk", "order_pk", "box_pk"),
    "items": ("org_pk", "order_pk", "box_pk", "item_pk"),
    "addresses": ("org_pk", "order_pk", "role"),
}


def warehouse_engine(target: Any) -> sa.Engine:
    """A SQLAlchemy engine on a test WarehouseTarget (search_path set on PostgreSQL)."""
    from warehouse.db import make_engine

    return make_engine(target.url, target.schema)


def fetch_rows(target: Any, table: str, *, live_only: bool = True) -> list[dict[str, Any]]:
    """All rows of one warehouse table; for child tables, only rows of non-deleted orders."""
    from warehouse import models

    engine = warehouse_engine(target)
    tbl = models.Base.metadata.tables[table]
    orders = models.Base.metadata.tables["orders"]
    query = sa.select(tbl)
    if live_only and table != "orders":
        query = query.join(
            orders, (orders.c.org_pk == tbl.c.org_pk) & (orders.c.order_pk == tbl.c.order_pk)
        ).where(orders.c.deleted_at.is_(None))
    elif live_only:
        query = query.where(orders.c.deleted_at.is_(None))
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]
    finally:
        engine.dispose()


def _norm(value: Any) -> Any:
    """Bring a value to a comparable form (numbers as floats, JSON text parsed, datetimes UTC)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float | Decimal):
        return float(value)
    if isinstance(value, datetime):
        assert value.tzinfo is not None, f"naive datetime in the warehouse: {value!r}"
        return value.timestamp()
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _same(a: Any, b: Any) -> bool:
    a, b = _norm(a), _norm(b)
    if isinstance(a, str) != isinstance(b, str) and None not in (a, b):
        # opaque identifiers such as order_number: the API sends numbers, the warehouse keeps text
        return str(a) == (str(int(b)) if isinstance(b, float) and b.is_integer() else str(b))
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)
    return bool(a == b)


def diff_table(
    actual: Iterable[Mapping[str, Any]],
    expected: Iterable[Mapping[str, Any]],
    table: str,
    *,
    orgs: set[str] | None = None,
) -> list[str]:
    """Differences between warehouse rows and expected rows, on the expected rows' columns."""
    key_cols = KEYS[table]
    act = {tuple(r[k] for k in key_cols): r for r in actual if orgs is None or r["org_pk"] in orgs}
    exp = {
        tuple(r[k] for k in key_cols): r for r in expected if orgs is None or r["org_pk"] in orgs
    }
    problems: list[str] = []
    for key in sorted(exp.keys() - act.keys())[:5]:
        problems.append(f"{table}: missing row {key}")
    for key in sorted(act.keys() - exp.keys())[:5]:
        problems.append(f"{table}: unexpected row {key}")
    for key in sorted(exp.keys() & act.keys()):
        for col, want in exp[key].items():
            got = act[key].get(col, "<no such column>")
            if not _same(got, want):
                problems.append(f"{table} {key}.{col}: warehouse {got!r} != source {want!r}")
                if len(problems) > 20:
                    return problems
    if len(exp) != len(act):
        problems.append(f"{table}: {len(act)} rows in the warehouse, {len(exp)} at the source")
    return problems


def assert_warehouse_matches(
    target: Any,
    expected: Mapping[str, list[dict[str, Any]]],
    *,
    orgs: Iterable[str] | None = None,
    tables: Iterable[str] = ("orders", "boxes", "items", "addresses"),
) -> None:
    """Fail with a readable diff unless every table equals the expected rows, column by column."""
    org_set = set(orgs) if orgs is not None else None
    problems: list[str] = []
    for table in tables:
        problems += diff_table(fetch_rows(target, table), expected[table], table, orgs=org_set)
    assert not problems, "warehouse differs from the source:\n  " + "\n  ".join(problems[:40])


def assert_no_duplicate_keys(target: Any) -> None:
    """Every table's contract key is unique (the primary keys should guarantee it)."""
    engine = warehouse_engine(target)
    try:
        with engine.connect() as conn:
            for table, cols in KEYS.items():
                key = ", ".join(cols)
                dupes = conn.execute(
                    sa.text(
                        f"SELECT {key}, count(*) FROM {table} GROUP BY {key} HAVING count(*) > 1"
                    )
                ).fetchall()
                assert not dupes, f"duplicate keys in {table}: {dupes[:5]}"
    finally:
        engine.dispose()
