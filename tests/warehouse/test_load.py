"""Loading on both dialects: idempotence, child replacement, older-state skip, watermark, views."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from warehouse import models, state
from warehouse.db import write_transaction
from warehouse.load import BackfillDay, Loader
from warehouse.normalize import normalize_orders

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
DATA = ("orders", "boxes", "items", "addresses", "load_issues")


def _snapshot(
    engine: Engine, ignore: tuple[str, ...] = ("synced_at", "last_seen_at")
) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    with engine.connect() as conn:
        for name in DATA:
            table = models.metadata.tables[name]
            cols = [c for c in table.columns if c.name not in ignore]
            rows = conn.execute(sa.select(*cols).order_by(*table.primary_key.columns)).all()
            out[name] = [tuple(r) for r in rows]
    return out


def _load(engine: Engine, docs: list[dict[str, Any]], at: datetime = T0, **kw: Any) -> Any:
    return Loader(engine).load_batch("7", normalize_orders("7", docs, at), **kw)


def test_load_twice_changes_nothing_but_synced_at(
    migrated: Engine, example_docs: list[dict[str, Any]]
) -> None:
    docs = copy.deepcopy(example_docs)
    docs[1]["billing"]["total"] = "lots"  # one load issue, too
    first = _load(migrated, docs)
    assert (first.orders_new, first.orders_updated, first.orders_unchanged) == (2, 0, 0)
    assert first.tables["items"].inserted == 3 and first.tables["boxes"].inserted == 2
    assert first.issues_new == 1
    before = _snapshot(migrated)
    second = _load(migrated, docs, T0 + timedelta(hours=1))
    assert (second.orders_new, second.orders_updated, second.orders_unchanged) == (0, 0, 2)
    assert second.issues_new == 0
    assert all(c.inserted == c.updated == c.deleted == 0 for c in second.tables.values())
    assert _snapshot(migrated) == before
    with migrated.connect() as conn:
        synced = conn.execute(sa.select(models.orders_table.c.synced_at)).scalars().all()
        seen = conn.execute(sa.select(models.load_issues_table.c.seen_at)).scalar_one()
    assert set(synced) == {T0 + timedelta(hours=1)}
    assert seen == T0  # first seen is kept


def test_values_round_trip(migrated: Engine, example_docs: list[dict[str, Any]]) -> None:
    _load(migrated, example_docs)
    with migrated.connect() as conn:
        order = conn.execute(
            sa.select(models.Order).where(models.orders_table.c.order_pk == "5120")
        ).one()
        item = conn.execute(
            sa.select(models.Item).where(models.items_table.c.item_pk == "11803")
        ).one()
        box = conn.execute(sa.select(models.Box).where(models.boxes_table.c.box_pk == "6388")).one()
    assert order.billing_total == Decimal("70.59") and order.billing_currency == "USD"
    assert order.ordered_at == datetime(2024, 5, 2, 14, 7, 31, tzinfo=UTC)
    assert order.ordered_at.utcoffset() == timedelta(0)
    assert order.nested_updated_at == datetime(2024, 5, 3, 9, 41, 17, 52901, tzinfo=UTC)
    assert order.tags == ["Paid"] and order.raw == example_docs[0]
    assert order.deleted_at is None
    assert item.unit_price == Decimal("30.00") and item.quantity == 1
    assert box.length_m == Decimal("0.3048") and box.shipper_release is False


def test_removed_children_disappear(migrated: Engine, example_docs: list[dict[str, Any]]) -> None:
    _load(migrated, example_docs)
    docs = copy.deepcopy(example_docs)
    docs[0]["nested_updated_at"] = "2024-05-04T00:00:00Z"
    docs[0]["boxes"][0]["items"].pop()  # item 11803 removed
    docs[0]["shipping"]["ship_from"] = None
    docs[1]["nested_updated_at"] = "2024-05-04T00:00:00Z"
    docs[1]["boxes"] = []  # box 6389 (and its item) removed
    stats = _load(migrated, docs, T0 + timedelta(hours=1))
    assert stats.orders_updated == 2
    assert stats.tables["items"].deleted == 2 and stats.tables["boxes"].deleted == 1
    assert stats.tables["addresses"].deleted == 1
    snap = _snapshot(migrated)
    assert [r[3] for r in snap["items"]] == ["11802"]
    assert [r[2] for r in snap["boxes"]] == ["6388"]
    assert {(r[1], r[2]) for r in snap["addresses"]} == {("5120", "ship_to"), ("5121", "ship_to")}
    # and an added item appears
    docs[0]["nested_updated_at"] = "2024-05-05T00:00:00Z"
    docs[0]["boxes"][0]["items"].append(copy.deepcopy(example_docs[0]["boxes"][0]["items"][1]))
    again = _load(migrated, docs, T0 + timedelta(hours=2))
    assert again.tables["items"].inserted == 1 and again.tables["items"].updated == 1


def test_older_state_never_regresses(migrated: Engine, example_docs: list[dict[str, Any]]) -> None:
    newer = copy.deepcopy(example_docs)
    newer[0]["nested_updated_at"] = "2024-06-01T00:00:00Z"
    newer[0]["primary_id"] = "NEW"
    _load(migrated, newer)
    stats = _load(migrated, example_docs, T0 + timedelta(hours=1))
    assert stats.orders_skipped_older == 1 and stats.orders_unchanged == 1
    with migrated.connect() as conn:
        pid = conn.execute(
            sa.select(models.orders_table.c.primary_id).where(
                models.orders_table.c.order_pk == "5120"
            )
        ).scalar_one()
    assert pid == "NEW"


def test_issues_are_mirrored(migrated: Engine, example_docs: list[dict[str, Any]]) -> None:
    docs = copy.deepcopy(example_docs)
    docs[0]["ordered_at"] = "garbage"
    docs.append({"url": "nonsense"})
    assert _load(migrated, docs).issues_new == 2
    docs[0]["ordered_at"] = "2024-05-02T14:07:31Z"
    docs[0]["nested_updated_at"] = "2024-05-05T00:00:00Z"
    assert _load(migrated, docs, T0 + timedelta(hours=1)).issues_new == 0
    with migrated.connect() as conn:
        rows = conn.execute(
            sa.select(models.load_issues_table.c.order_pk, models.load_issues_table.c.column_name)
        ).all()
    assert [tuple(r) for r in rows] == [("?", "url")]


def test_watermark_moves_forward_only_when_live(
    migrated: Engine, example_docs: list[dict[str, Any]]
) -> None:
    assert state.get_watermark(migrated, "7") is None
    _load(migrated, example_docs, checkpoint=T0, live=False)
    assert state.get_watermark(migrated, "7") is None
    assert _load(migrated, example_docs, checkpoint=T0, live=True).watermark == T0
    _load(migrated, example_docs, checkpoint=T0 - timedelta(days=3), live=True)
    assert state.get_watermark(migrated, "7") == T0
    _load(migrated, [], checkpoint=T0 + timedelta(days=1), live=True)
    assert state.get_watermark(migrated, "7") == T0 + timedelta(days=1)
    _load(migrated, [], checkpoint=T0 + timedelta(days=9), live=False)
    assert state.get_watermark(migrated, "7") == T0 + timedelta(days=1)


def test_backfill_day_recorded_in_batch(
    migrated: Engine, example_docs: list[dict[str, Any]]
) -> None:
    _load(migrated, example_docs, backfill_days=[BackfillDay("bf-1", date(2024, 5, 2))])
    assert state.days_done(migrated, "7", "bf-1") == {date(2024, 5, 2)}
    with write_transaction(migrated, "7") as conn:
        state.record_day_done(conn, "7", "bf-1", date(2024, 5, 3), T0)
    assert state.days_done(migrated, "7", "bf-1") == {date(2024, 5, 2), date(2024, 5, 3)}
    assert state.days_done(migrated, "7", "other") == set()


def test_views(migrated: Engine, example_docs: list[dict[str, Any]]) -> None:
    _load(migrated, example_docs)
    with migrated.connect() as conn:
        lines = conn.execute(sa.text("SELECT * FROM order_lines ORDER BY item_pk")).mappings().all()
        summary = conn.execute(sa.text("SELECT * FROM daily_order_summary")).mappings().all()
    assert [r["item_pk"] for r in lines] == ["11802", "11803", "11804"]
    first = lines[0]
    assert first["primary_id"] == "WEB-20931" and first["tracking_number"] == "1Z4A9F370312345678"
    assert first["ship_to_city"] == "Asheville" and first["quantity"] == 2
    assert Decimal(str(first["line_total"])) == Decimal("28")
    assert Decimal(str(first["line_weight_g"])) == Decimal("192")
    assert len(summary) == 1
    row = summary[0]
    assert str(row["day"]) == "2024-05-02" and row["billing_currency"] == "USD"
    assert (row["orders"], row["items"], row["units"]) == (2, 3, 7)
    assert Decimal(str(row["billing_total"])) == Decimal("190.59")

    state.mark_deleted(migrated, "7", ["5121"], T0)
    with migrated.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM order_lines")).scalar() == 2
        assert conn.execute(sa.text("SELECT orders FROM daily_order_summary")).scalar() == 1
    # re-reading the version that was current when it vanished does not clear the mark...
    assert _load(migrated, example_docs, T0 + timedelta(hours=1)).orders_unchanged == 2
    with migrated.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM order_lines")).scalar() == 2
    # ...a listing that proves the order back does
    assert state.clear_deleted(migrated, "7", ["5121"]) == 1
    with migrated.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM order_lines")).scalar() == 3


def test_many_orders(migrated: Engine, example_docs: list[dict[str, Any]]) -> None:
    docs = []
    for n in range(800):
        doc = copy.deepcopy(example_docs[n % 2])
        old = doc["url"].split("/")[-2]
        doc["url"] = doc["url"].replace(f"/orders/{old}/", f"/orders/{n}/")
        for box in doc["boxes"]:
            box["url"] = box["url"].replace(f"/orders/{old}/", f"/orders/{n}/")
            for item in box["items"]:
                item["url"] = item["url"].replace(f"/orders/{old}/", f"/orders/{n}/")
        docs.append(doc)
    stats = _load(migrated, docs)
    assert stats.orders_new == 800 and stats.tables["items"].inserted == 1200
    assert _load(migrated, docs, T0 + timedelta(hours=1)).orders_unchanged == 800
    counts = state.status(migrated)[0].row_counts
    assert counts == {"orders": 800, "boxes": 800, "items": 1200, "addresses": 1200}


def test_hostile_documents_load(migrated: Engine) -> None:
    weird = "".join(chr(c) for c in (0x41, 0x85, 0x2028, 0xFEFF, 0x1F600, 0x10FFFF)) + "\ud800"
    doc = {
        "url": "/api/v2/orgs/7/orders/h%00x/",
        "primary_id": "x" * 10_000,
        "message": weird,
        "terms": "'; DROP TABLE orders; --",
        "po_number": "a\x00b",
        "ordered_at": "0001-01-01T00:00:00Z",
        "printed_at": "9999-12-31T23:59:59.999999Z",
        "nested_updated_at": "2024-05-01T00:00:00Z",
        "billing": {"total": "1e14 USD", "tax": "NaN"},
        "custom_fields": {"k\x00": float("nan"), "n": 1e308},
        "tags": ["a\x00", weird],
        "boxes": [
            {
                "url": "/api/v2/orgs/7/orders/h%00x/boxes/1/",
                "weight": "1 LBS",
                "items": [
                    {
                        "url": "/api/v2/orgs/7/orders/h%00x/boxes/1/items/1/",
                        "quantity": "9223372036854775807",
                    }
                ],
            }
        ],
    }
    stats = _load(migrated, [doc])
    assert stats.orders_new == 1 and stats.issues_new > 0
    with migrated.connect() as conn:
        order = conn.execute(sa.select(models.Order)).one()
        item = conn.execute(sa.select(models.Item)).one()
    assert order.order_pk == "h\ufffdx"
    assert order.primary_id == "x" * 10_000 and order.terms == "'; DROP TABLE orders; --"
    assert order.message == weird[:-1] + "\ufffd"
    assert order.po_number == "a\ufffdb"
    assert order.ordered_at == datetime(1, 1, 1, tzinfo=UTC)
    assert order.printed_at == datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    assert order.billing_total == Decimal("1e14")
    assert order.custom_fields["k\ufffd"] is None
    assert float(order.custom_fields["n"]) == 1e308  # JSONB may hand back an int
    assert item.quantity == 9223372036854775807
    assert _load(migrated, [doc], T0 + timedelta(hours=1)).orders_unchanged == 1


def test_naive_datetimes_are_rejected(migrated: Engine) -> None:
    import pytest

    with pytest.raises(sa.exc.StatementError, match="naive"), migrated.begin() as conn:
        conn.execute(
            sa.insert(models.sync_runs_table).values(
                kind="x", status="running", started_at=datetime(2024, 1, 1)
            )
        )
