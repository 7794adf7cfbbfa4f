"""Normalization of the documented example and of hostile documents (never raises)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from warehouse.normalize import UNKNOWN_ORDER, NormalizedBatch, normalize_orders

SYNCED = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def _by(batch: NormalizedBatch, table: str, **where: Any) -> dict[str, Any]:
    rows = [r for r in batch.records(table) if all(r[k] == v for k, v in where.items())]
    assert len(rows) == 1, (table, where, rows)
    return rows[0]


def _issues(batch: NormalizedBatch) -> list[tuple[str, str, str, str]]:
    return [
        (r["order_pk"], r["table_name"], r["row_key"], r["column_name"])
        for r in batch.issue_records()
    ]


def test_example_page(example_docs: list[dict[str, Any]]) -> None:
    batch = normalize_orders("7", example_docs, SYNCED)
    assert batch.order_pks == ["5120", "5121"]
    assert len(batch.boxes) == 2 and len(batch.items) == 3 and len(batch.addresses) == 3
    assert batch.issue_records() == []

    order = _by(batch, "orders", order_pk="5120")
    assert order["primary_id"] == "WEB-20931"
    assert order["order_number"] == "20931"
    assert order["billing_total"] == Decimal("70.59")
    assert order["billing_subtotal"] == Decimal("58.00")
    assert order["billing_currency"] == "USD"
    assert order["billing_status"] == "paid"
    assert order["ship_via"] == "UPS" and order["warehouse"] == "Main"
    assert order["source_name"] == "Storefront Sync"
    assert order["tags"] == ["Paid"] and order["custom_fields"] == {"gift_wrap": "no"}
    assert order["ordered_at"] == datetime(2024, 5, 2, 14, 7, 31, tzinfo=UTC)
    assert order["nested_updated_at"] == datetime(2024, 5, 3, 9, 41, 17, 52901, tzinfo=UTC)
    assert order["printed_at"] is None
    assert order["po_number"] == ""  # text verbatim: empty stays empty
    assert order["raw"] == example_docs[0]
    assert order["synced_at"] == SYNCED
    assert len(order["content_hash"]) == 64

    box = _by(batch, "boxes", box_pk="6388")
    assert box["order_pk"] == "5120"
    assert box["length_m"] == Decimal("0.3048") and box["height_m"] == Decimal("0.1524")
    assert box["weight_g"] == Decimal("1247.000")
    assert box["ship_cost"] == Decimal("7.95") and box["currency"] == "USD"
    assert box["tracking_number"] == "1Z4A9F370312345678"
    assert box["shipper_release"] is False and box["delivered_at"] is None
    empty_box = _by(batch, "boxes", box_pk="6389")
    assert empty_box["length_m"] is None and empty_box["tracking_number"] is None

    item = _by(batch, "items", item_pk="11803")
    assert (item["order_pk"], item["box_pk"]) == ("5120", "6388")
    assert item["quantity"] == 1 and item["unit_price"] == Decimal("30.00")
    assert item["unit_weight_g"] == Decimal("1055.000") and item["currency"] == "USD"
    assert item["ean"] == "4006381333931" and item["ups"] is None
    assert item["custom_fields"] == {"color": "slate"}

    ship_to = _by(batch, "addresses", order_pk="5120", role="ship_to")
    assert ship_to["city"] == "Asheville" and ship_to["residential"] is True
    ship_from = _by(batch, "addresses", order_pk="5120", role="ship_from")
    assert ship_from["company"] == "Tidewater Outfitters" and ship_from["validated"] is True
    assert not [
        r
        for r in batch.records("addresses")
        if r["order_pk"] == "5121" and r["role"] == "ship_from"
    ]


def test_content_hash_is_stable_and_sensitive(example_docs: list[dict[str, Any]]) -> None:
    first = normalize_orders("7", example_docs, SYNCED).orders["content_hash"].tolist()
    reordered = [dict(reversed(list(d.items()))) for d in example_docs]
    assert normalize_orders("7", reordered, SYNCED).orders["content_hash"].tolist() == first
    changed = copy.deepcopy(example_docs)
    changed[0]["boxes"][0]["items"][0]["quantity"] = 3
    assert normalize_orders("7", changed, SYNCED).orders["content_hash"].tolist()[0] != first[0]


def _order(pk: str = "1", **fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "url": f"/api/v2/orgs/7/orders/{pk}/",
        "nested_updated_at": "2024-05-01T00:00:00Z",
    }
    doc.update(fields)
    return doc


def test_hostile_values_become_null_plus_issue() -> None:
    long_text = "x" * 10_000
    weird = "".join(chr(c) for c in (0x41, 0x7F, 0x85, 0x2028, 0xFEFF, 0x1F600, 0x10FFFF, 0xE000))
    sql = "'; DROP TABLE orders; --"
    doc = _order(
        primary_id=long_text,
        message=weird,
        terms=sql,
        po_number="nul\x00byte",
        customer_number=12345,
        order_number="20931",
        ordered_at="0001-01-01T00:00:00+05:00",
        printed_at="9999-12-31T23:59:59Z",
        created_at="not a date",
        updated_at=1714600000,
        billing={"total": "12.34 XYZ", "subtotal": "1e999 USD", "tax": 5, "shipping": {"a": 1}},
        shipping="nowhere",
        tags="not-a-list",
        custom_fields=["not", "an", "object"],
        boxes=[
            {
                "url": "/api/v2/orgs/7/orders/1/boxes/b1/",
                "weight": "5 stone",
                "length": "10 furlongs",
                "shipper_release": "perhaps",
                "saturday_delivery": "1",
                "ship_cost": "3.00 USD",
                "cod_value": "1.00 EUR",
                "items": [
                    {"url": "/api/v2/orgs/7/orders/1/boxes/b1/items/i1/", "quantity": "2"},
                    {"url": "/api/v2/orgs/7/orders/1/boxes/b1/items/i2/", "quantity": "two"},
                    {"url": "/api/v2/orgs/7/orders/1/boxes/OTHER/items/i3/", "quantity": 1},
                    "not an item",
                    {"no": "url"},
                ],
            },
            {"url": "/api/v2/orgs/7/orders/1/boxes/b2/", "items": None},
            {"url": "/api/v2/orgs/7/orders/1/boxes/b2/"},
            None,
        ],
    )
    batch = normalize_orders("7", [doc], SYNCED)
    order = batch.records("orders")[0]
    assert order["primary_id"] == long_text
    assert order["message"] == weird
    assert order["terms"] == sql
    assert order["po_number"] == "nul\ufffdbyte"
    assert order["customer_number"] == "12345" and order["order_number"] == "20931"
    assert (
        order["ordered_at"] is None and order["created_at"] is None and order["updated_at"] is None
    )
    assert order["printed_at"] == datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert order["billing_total"] is None and order["billing_subtotal"] is None
    assert order["billing_tax"] == Decimal(5) and order["billing_currency"] is None
    assert order["tags"] is None and order["custom_fields"] is None
    assert order["raw"]["po_number"] == "nul\ufffdbyte"
    assert "\x00" not in json.dumps(order["raw"])
    assert batch.orders["_raw_json"][0].find("\\u0000") == -1

    issues = set(_issues(batch))
    for column in (
        "po_number",
        "ordered_at",
        "created_at",
        "updated_at",
        "billing_total",
        "billing_subtotal",
        "billing_shipping",
        "shipping",
        "tags",
        "custom_fields",
        "raw",
    ):
        assert ("1", "orders", "", column) in issues, column
    assert ("1", "boxes", "b1", "weight_g") in issues
    assert ("1", "boxes", "b1", "length_m") in issues
    assert ("1", "boxes", "b1", "shipper_release") in issues
    assert ("1", "boxes", "b1", "cod_value") in issues  # EUR in a USD box
    assert ("1", "items", "b1/i2", "quantity") in issues
    assert ("1", "items", "b1/items[2]", "url") in issues
    assert ("1", "items", "b1/items[3]", "url") in issues
    assert ("1", "boxes", "b2", "url") in issues  # duplicate box
    assert ("1", "boxes", "boxes[3]", "url") in issues

    box = _by(batch, "boxes", box_pk="b1")
    assert box["weight_g"] is None and box["saturday_delivery"] is True and box["currency"] == "USD"
    assert box["cod_value"] is None and box["ship_cost"] == Decimal("3.00")
    assert sorted(r["item_pk"] for r in batch.records("items")) == ["i1", "i2"]
    assert _by(batch, "items", item_pk="i1")["quantity"] == 2
    assert len(batch.boxes) == 2 and len(batch.addresses) == 0
    issue = next(r for r in batch.issue_records() if r["column_name"] == "po_number")
    assert issue["raw_value"] == "nul\ufffdbyte" and "U+FFFD" in issue["message"]


def test_missing_keys_and_null_boxes() -> None:
    batch = normalize_orders(
        "7", [_order("1", boxes=None), _order("2"), {"url": "/api/v2/orgs/7/orders/3/"}], SYNCED
    )
    assert batch.order_pks == ["1", "2", "3"]
    assert batch.boxes.empty and batch.items.empty
    assert batch.records("orders")[2]["nested_updated_at"] is None
    assert batch.issue_records() == []


def test_unusable_documents_are_skipped_with_issue() -> None:
    docs: list[Any] = [
        {"primary_id": "no url"},
        {"url": "https://example.com/not/api"},
        {"url": "/api/v2/orgs/8/orders/1/"},
        {"url": "/api/v2/orgs/7/orders/1/boxes/2/"},
        "a string",
        None,
        _order("ok"),
    ]
    batch = normalize_orders("7", docs, SYNCED)
    assert batch.order_pks == ["ok"]
    assert batch.docs_skipped == 6
    skipped = [r for r in batch.issue_records() if r["order_pk"] == UNKNOWN_ORDER]
    assert len(skipped) == 6
    assert all(r["row_key"].startswith("doc:") for r in skipped)


def test_duplicates_keep_the_newest() -> None:
    older = _order("1", nested_updated_at="2024-01-01T00:00:00Z", primary_id="old")
    newer = _order("1", nested_updated_at="2024-02-01T00:00:00Z", primary_id="new")
    for docs in ([older, newer], [newer, older]):
        batch = normalize_orders("7", docs, SYNCED)
        assert [r["primary_id"] for r in batch.records("orders")] == ["new"]


def test_empty_batch() -> None:
    batch = normalize_orders("7", [], SYNCED)
    assert batch.orders.empty and batch.issues.empty and batch.order_pks == []


def test_naive_synced_at_rejected() -> None:
    with pytest.raises(ValueError, match="aware"):
        normalize_orders("7", [], datetime(2024, 1, 1))


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text()),
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = [
    "primary_id",
    "ordered_at",
    "nested_updated_at",
    "billing",
    "shipping",
    "boxes",
    "tags",
    "custom_fields",
    "message",
]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    overrides=st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=6),
    pk=st.text(min_size=1, max_size=5),
)
def test_never_raises_on_arbitrary_json(overrides: dict[str, Any], pk: str) -> None:
    from urllib.parse import quote

    doc = {"url": f"/api/v2/orgs/7/orders/{quote(pk, safe='')}/", **overrides}
    batch = normalize_orders("7", [doc], SYNCED)
    assert len(batch.orders) + batch.docs_skipped == 1
    for record in batch.records("orders"):
        json.dumps(record["raw"], allow_nan=False).encode("utf-8")
