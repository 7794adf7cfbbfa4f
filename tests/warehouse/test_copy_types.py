"""COPY told each column's type writes exactly what psycopg's per-value dumpers write."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from support import PINNED_AT, pinned_org_docs

from warehouse import models
from warehouse.bulk import BulkWriter, copy_type
from warehouse.load import RAW_JSON, BatchColumns
from warehouse.normalize import normalize_orders

T0 = PINNED_AT


def test_copy_type_names_only_exact_single_types() -> None:
    aware = datetime(2024, 5, 1, tzinfo=UTC)
    assert copy_type([None, None]) == "text"
    assert copy_type(["a", None]) == "text"
    assert copy_type([True, None, False]) == "bool"
    assert copy_type([1, None, -(2**63), 2**63 - 1]) == "int8"
    assert copy_type([aware, None, aware.astimezone(timezone(timedelta(hours=2)))]) == (
        "timestamptz"
    )
    assert copy_type([1, 2**63]) is None  # beyond bigint: psycopg's numeric
    assert copy_type([1, True]) is None  # mixed
    assert copy_type(["1", 1]) is None
    assert copy_type([aware, datetime(2024, 5, 1)]) is None  # a naive one
    assert copy_type([1.5]) is None


def test_typed_copy_stores_the_same_rows(migrated: Engine) -> None:
    if migrated.dialect.name != "postgresql":
        pytest.skip("COPY is PostgreSQL's")
    org, docs = pinned_org_docs(150, seed=13, poison_rate=0.2)
    batch = normalize_orders(org, docs, T0)
    names = ("orders", "addresses", "boxes", "items")
    stored: list[dict[str, list[Any]]] = []
    for typed in (True, False):
        with migrated.connect() as conn, conn.begin() as tx:
            writer = BulkWriter(conn)
            shared = BatchColumns(writer)
            found: dict[str, list[Any]] = {}
            for name in names:
                table = models.metadata.tables[name]
                frame = batch.tables[name]
                verbatim = {"raw": shared.values(frame, RAW_JSON)} if name == "orders" else {}
                rows = shared.rows(table, frame, None, {}, verbatim)
                assert rows.copy_types is not None
                writer.write(table, rows if typed else list(rows))
            for name in names:
                keys = ", ".join(f'"{c.name}"' for c in models.metadata.tables[name].primary_key)
                found[name] = conn.exec_driver_sql(
                    f'SELECT t::text FROM (SELECT * FROM "{name}" ORDER BY {keys}) t'
                ).all()
            stored.append(found)
            tx.rollback()
    assert stored[0] == stored[1]
    assert len(stored[0]["items"]) > 100
