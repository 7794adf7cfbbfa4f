"""A first load's rows are copied straight into the tables on PostgreSQL (`fresh`), and a row
that clashes after all (history left behind for an order the warehouse no longer holds) is
upserted instead: the same tables as the upsert path, on both databases."""

from __future__ import annotations

import copy
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from support import PINNED_AT, pinned_org_docs

from warehouse import bulk
from warehouse.load import Loader
from warehouse.normalize import normalize_orders

T0 = PINNED_AT
DATA = ("orders", "boxes", "items", "addresses", "order_history", "box_history", "item_history")


def _tables(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    with engine.connect() as conn:
        for name in DATA:
            rows = conn.execute(sa.text(f"SELECT * FROM {name}")).mappings().all()
            out[name] = sorted(
                tuple((k, repr(v)) for k, v in sorted(r.items()) if k not in ("observed_at",))
                for r in rows
            )
    return out


def _copies(monkeypatch: Any) -> list[str]:
    """Record the tables written by the fresh COPY path (None results: fell back)."""
    seen: list[str] = []
    original = bulk.BulkWriter._copy_fresh

    def spy(self: bulk.BulkWriter, table: sa.Table, data: list[tuple[Any, ...]]) -> int | None:
        result = original(self, table, data)
        seen.append(table.name if result is not None else f"fallback:{table.name}")
        return result

    monkeypatch.setattr(bulk.BulkWriter, "_copy_fresh", spy)
    return seen


def test_a_first_load_is_copied_and_a_clash_falls_back(migrated: Engine, monkeypatch: Any) -> None:
    org, docs = pinned_org_docs(60, seed=4)
    seen = _copies(monkeypatch)
    Loader(migrated).load_batch(org, normalize_orders(org, copy.deepcopy(docs[:40]), T0))
    if migrated.dialect.name == "postgresql":
        assert set(seen) == set(DATA)  # every table of a first load: straight COPY
    else:
        assert seen == []  # SQLite has no COPY: the usual upserts
    after_first = _tables(migrated)

    # An order the warehouse no longer holds, whose history rows are still there.
    gone = docs[0]["url"].rstrip("/").rsplit("/", 1)[-1]
    with migrated.begin() as conn:
        for name in ("items", "boxes", "addresses", "orders"):
            conn.execute(sa.text(f"DELETE FROM {name} WHERE order_pk = :pk"), {"pk": gone})
    seen.clear()
    # ... comes back, with orders never seen before: the clash is upserted, nothing lost
    Loader(migrated).load_batch(org, normalize_orders(org, copy.deepcopy(docs[:1] + docs[40:]), T0))
    if migrated.dialect.name == "postgresql":
        assert "fallback:order_history" in seen and "orders" in seen
    reference = _tables(migrated)
    for name in DATA:
        assert {r for r in after_first[name]} <= set(reference[name]), name

    # the same two loads without the fresh path give the same tables
    with migrated.begin() as conn:
        for name in reversed(DATA):
            conn.execute(sa.text(f"DELETE FROM {name}"))
    monkeypatch.setattr(bulk.BulkWriter, "_copy_fresh", lambda self, table, data: None)
    Loader(migrated).load_batch(org, normalize_orders(org, copy.deepcopy(docs[:40]), T0))
    with migrated.begin() as conn:
        for name in ("items", "boxes", "addresses", "orders"):
            conn.execute(sa.text(f"DELETE FROM {name} WHERE order_pk = :pk"), {"pk": gone})
    Loader(migrated).load_batch(org, normalize_orders(org, copy.deepcopy(docs[:1] + docs[40:]), T0))
    assert _tables(migrated) == reference
