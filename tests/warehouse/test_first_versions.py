"""Brand-new orders' history, written from the batch's columns, equals the timeline merge's."""

from __future__ import annotations

import copy
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from support import PINNED_AT, pinned_org_docs

from warehouse import history, models
from warehouse.bulk import BulkWriter
from warehouse.db import write_transaction
from warehouse.load import Loader, history_versions
from warehouse.normalize import normalize_orders

T0 = PINNED_AT
TABLES = ("order_history", "box_history", "item_history")


def _docs() -> tuple[str, list[dict[str, Any]]]:
    org, docs = pinned_org_docs(240, seed=11, poison_rate=0.1)
    for j, doc in enumerate(docs[:40]):  # odd documents
        if j % 5 == 0:
            doc.pop("nested_updated_at", None)  # no version time: no history row
        elif j % 5 == 1:
            doc["nested_updated_at"] = "not a time"
        elif j % 5 == 2:
            doc["boxes"] = []
        elif j % 5 == 3:
            (doc.get("shipping") or {}).pop("ship_to", None)
    docs.append(copy.deepcopy(docs[50]))  # a duplicate document
    return org, docs[::-1]  # not in key order


def _history(engine: Engine) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with engine.connect() as conn:
        for name in TABLES:
            table = models.metadata.tables[name]
            cols = ", ".join(f'"{c.name}"' for c in table.columns)
            keys = ", ".join(f'"{c.name}"' for c in table.primary_key.columns)
            out[name] = conn.exec_driver_sql(f'SELECT {cols} FROM "{name}" ORDER BY {keys}').all()
            if engine.dialect.name == "sqlite":  # the order rows went in
                out[name + " rowid"] = conn.exec_driver_sql(
                    f'SELECT {keys} FROM "{name}" ORDER BY rowid'
                ).all()
    return out


def test_first_versions_equal_the_timeline_merge(migrated: Engine) -> None:
    org, docs = _docs()
    batch = normalize_orders(org, docs, T0)
    stats = Loader(migrated).load_batch(org, batch, observed_by="backfill")
    assert stats.orders_new == len(batch.orders)
    fast = _history(migrated)
    assert len(fast["order_history"]) == len(batch.orders) - 16  # 8 + 8 have no version time
    assert fast["box_history"] and fast["item_history"]
    with write_transaction(migrated, org) as conn:
        for name in reversed(TABLES):
            conn.execute(sa.delete(models.metadata.tables[name]))
        versions = history_versions(batch, range(len(batch.orders)), "backfill")
        counts = history.HistoryWriter(conn, BulkWriter(conn), org).record(
            versions, new_orders=list(versions)
        )
    assert _history(migrated) == fast
    assert stats.history == {name: counts.inserted.get(name, 0) for name in TABLES}
