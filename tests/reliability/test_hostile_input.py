"""Scenario 8: hostile input. Text is stored verbatim (10,000 characters, every unicode plane,
SQL-looking strings); NUL bytes, which no PostgreSQL text column can hold, become U+FFFD with
a load issue; values a typed column cannot hold become NULL plus a `load_issues` row; the
sync never crashes.

Part one goes end to end through the sandbox (text set through its mutation API, typed junk
from `poison_rate`) and compares column by column. Part two serves hand-made documents the
sandbox model cannot express (boxes: null, missing keys, numbers as strings and strings as
numbers, unknown units and currencies, dates far in the past and future) through the real
client and engine, from an in-memory transport that ignores the filters like an old server.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from reliability_support import TOKEN, Harness, assert_exact
from support import assert_no_duplicate_keys, fetch_rows

from rc_extract.client import ReadyCloudClient
from rc_sync.engine import SyncEngine
from rc_sync.settings import load_settings

pytestmark = pytest.mark.reliability

LONG = "x" * 9_990 + "ünï©ødé✓"  # 9,998 characters
# one character from every plane that has assigned characters (BMP, SMP, SIP, TIP, SSP)
PLANES = "A é 中 \U0001f600 \U00020000 \U00030000 \U000e0001 \U0010fffd \ufeff \u202e"
SQLISH = "Robert'); DROP TABLE orders;-- \" OR 1=1 /* */ \\x00 $$ ; COMMIT;"


def test_hostile_text_end_to_end(harness: Harness, target) -> None:
    server = harness.sandbox(orders=120, seed=61, poison_rate=0.3)
    store = server.store
    org = store.org_pks()[0]
    pks = store.order_pks(org)
    store.update_order(org, pks[0], message=LONG, po_number=PLANES, terms=SQLISH)
    store.update_order(org, pks[1], message=SQLISH * 3, customer_number=PLANES[::-1])
    store.change_address(org, pks[2], "ship_to", city=PLANES, address_1=LONG, company=SQLISH)
    with_box = next(p for p in pks[3:] if store.get_order(org, p).boxes)
    box = store.get_order(org, with_box).boxes[0]
    store.update_box(org, with_box, box.pk, tracking_number=SQLISH, description=PLANES)
    nul_pk = pks[4]
    store.update_order(org, nul_pk, message="before\x00after")

    engine = harness.engine(server, target, batch_orders=40)
    assert engine.sync_incremental().status == "success"

    # NUL: replaced by U+FFFD in the stored text, and recorded
    row = next(r for r in fetch_rows(target, "orders") if r["order_pk"] == nul_pk)
    assert row["message"] == "before\ufffdafter"
    issues = fetch_rows(target, "load_issues", live_only=False)
    assert any(i["order_pk"] == nul_pk and i["column_name"] == "message" for i in issues)
    # ... and everything else equals the source exactly, text verbatim
    store.update_order(org, nul_pk, message="before\ufffdafter")
    assert engine.sync_incremental().status == "success"
    assert_exact(target, server)
    stored = {r["order_pk"]: r for r in fetch_rows(target, "orders")}
    assert stored[pks[0]]["message"] == LONG and len(stored[pks[0]]["message"]) == len(LONG)
    assert stored[pks[0]]["po_number"] == PLANES
    assert stored[pks[0]]["terms"] == SQLISH


# -- part two: documents the sandbox cannot express -----------------------------------------

ORG = "hostile-org"


def _order(pk: str, **fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "url": f"/api/v2/orgs/{ORG}/orders/{pk}/",
        "nested_updated_at": "2024-03-01T10:00:00Z",
        "updated_at": "2024-03-01T10:00:00Z",
        "created_at": "2024-03-01T09:00:00Z",
    }
    doc.update(fields)
    return doc


def _box(order: str, pk: str, **fields: Any) -> dict[str, Any]:
    return {"url": f"/api/v2/orgs/{ORG}/orders/{order}/boxes/{pk}/", **fields}


def _item(order: str, box: str, pk: str, **fields: Any) -> dict[str, Any]:
    return {"url": f"/api/v2/orgs/{ORG}/orders/{order}/boxes/{box}/items/{pk}/", **fields}


DOCS: list[dict[str, Any]] = [
    _order("null-boxes", boxes=None, billing=None, shipping=None, tags=None),
    _order("bare"),  # every optional key missing
    _order(
        "strings-as-numbers",
        order_number="000123",
        billing={"status": "paid", "total": "12.50", "tax": "0.99 usd"},
        boxes=[
            _box(
                "strings-as-numbers",
                "b1",
                weight="1200",
                length="15 cm",
                items=[_item("strings-as-numbers", "b1", "i1", quantity="3")],
            )
        ],
    ),
    _order(
        "numbers-as-strings",
        message=12345,
        po_number=1.5e300,
        terms=True,
        customer_number=-0.0,
        order_number=4.0,
        tags=["a", 1, None],
        custom_fields={"n": 1e308, "deep": {"x": [1, {"y": "z"}]}},
        boxes=[_box("numbers-as-strings", "b1", tracking_number=987654321, items=None)],
    ),
    _order(
        "unknown-units",
        billing={"total": "5.00 XYZ", "subtotal": "5.00 USD"},
        boxes=[
            _box(
                "unknown-units",
                "b1",
                weight="5 stone",
                length="3 cubits",
                ship_cost="7 ZZZ",
                items=[
                    _item("unknown-units", "b1", "i1", unit_weight="2 bushels", quantity="lots"),
                    _item("unknown-units", "b1", "i2", unit_price="1.00 EUR", quantity=2.5),
                ],
            )
        ],
    ),
    _order(
        "far-dates",
        ordered_at="0001-01-01T00:00:00Z",
        printed_at="9999-12-31T23:59:59.999999Z",
        boxes=[
            _box("far-dates", "b1", delivered_at="+275760-09-13T00:00:00Z", items=[]),
            _box("far-dates", "b2", delivered_at="1900-01-01T00:00:00+14:00", items=[]),
        ],
    ),
    _order(
        "wrong-shapes",
        billing="not an object",
        shipping=["not", "an", "object"],
        boxes={"url": "not a list"},
        custom_fields="not an object",
        tags="not a list",
    ),
    _order("big-number", order_number=10**30, billing={"total": "1e400 USD"}),
]


def _transport(docs: list[dict[str, Any]]) -> httpx.MockTransport:
    """An old-style server: filters and ordering ignored, one page for everything."""

    def page(results: list[dict[str, Any]]) -> httpx.Response:
        return httpx.Response(200, json={"count": len(results), "next": None, "results": results})

    def handler(request: httpx.Request) -> httpx.Response:
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return httpx.Response(401, json={"detail": "no"})
        path = urlsplit(str(request.url)).path
        query = parse_qs(urlsplit(str(request.url)).query)
        if path == "/api/v2/orgs/":
            return page([{"url": f"/api/v2/orgs/{ORG}/", "name": "Hostile"}])
        if path == f"/api/v2/orgs/{ORG}/orders/":
            if "only" in query:
                return page(
                    [{"url": d["url"], "nested_updated_at": d["nested_updated_at"]} for d in docs]
                )
            return page(docs)
        for doc in docs:
            if path == doc["url"]:
                body = json.dumps(doc).encode()
                return httpx.Response(
                    200, content=body, headers={"content-type": "application/json"}
                )
        return httpx.Response(404, json={"detail": "Not found."})

    return httpx.MockTransport(handler)


def test_hand_made_hostile_documents(harness: Harness, target) -> None:
    harness.targets.append(target)
    settings = load_settings(
        readycloud_base_url="https://hostile.example.com",
        readycloud_api_token=TOKEN,
        warehouse_url=target.url,
        warehouse_schema=target.schema,
    )
    client = ReadyCloudClient(
        settings.readycloud_base_url, TOKEN, transport=_transport(DOCS), sleep=lambda s: None
    )
    harness.clients.append(client)
    with SyncEngine(settings, client=client, auto_migrate=True) as engine:
        report = engine.sync_incremental()
        assert report.status == "success"
        assert report.orgs[0].path == "compact-diff"
        again = engine.sync_incremental()  # unchanged documents: nothing rewritten
        assert again.orgs[0].orders_updated == 0
    assert_no_duplicate_keys(target)

    orders = {r["order_pk"]: r for r in fetch_rows(target, "orders")}
    boxes = {(r["order_pk"], r["box_pk"]): r for r in fetch_rows(target, "boxes")}
    items = {(r["order_pk"], r["item_pk"]): r for r in fetch_rows(target, "items")}
    issues = {
        (r["order_pk"], r["table_name"], r["column_name"]): r
        for r in fetch_rows(target, "load_issues", live_only=False)
    }
    assert set(orders) == {d["url"].split("/")[-2] for d in DOCS}

    # boxes: null, billing: null, missing keys: the order, no children, NULL columns
    assert orders["null-boxes"]["billing_total"] is None
    assert not [k for k in boxes if k[0] in ("null-boxes", "bare")]
    assert orders["bare"]["message"] is None
    # strings as numbers: parsed where the string is a number
    s2n = orders["strings-as-numbers"]
    assert str(s2n["order_number"]) in ("000123", "123")
    assert float(boxes[("strings-as-numbers", "b1")]["length_m"]) == pytest.approx(0.15)
    assert items[("strings-as-numbers", "i1")]["quantity"] == 3
    # numbers in text columns: their JSON text; tags/custom fields kept as JSON
    n2s = orders["numbers-as-strings"]
    assert n2s["message"] == "12345"
    assert n2s["terms"] == "true"
    assert float(n2s["po_number"]) == 1.5e300
    assert boxes[("numbers-as-strings", "b1")]["tracking_number"] == "987654321"
    # unknown units and currencies: NULL plus an issue naming the raw value
    uu = boxes[("unknown-units", "b1")]
    assert uu["weight_g"] is None and uu["length_m"] is None and uu["ship_cost"] is None
    for column in ("weight_g", "length_m", "ship_cost"):
        assert ("unknown-units", "boxes", column) in issues, column
    assert issues[("unknown-units", "boxes", "weight_g")]["raw_value"] == "5 stone"
    assert items[("unknown-units", "i1")]["quantity"] is None
    assert ("unknown-units", "items", "quantity") in issues
    assert ("unknown-units", "items", "unit_weight_g") in issues
    assert orders["unknown-units"]["billing_total"] is None
    assert ("unknown-units", "orders", "billing_total") in issues
    # dates far in the past and future: stored when representable, else NULL plus an issue
    fd = orders["far-dates"]
    assert fd["ordered_at"] == datetime(1, 1, 1, tzinfo=UTC)
    assert fd["printed_at"] == datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    assert boxes[("far-dates", "b1")]["delivered_at"] is None
    assert ("far-dates", "boxes", "delivered_at") in issues
    assert boxes[("far-dates", "b2")]["delivered_at"] == datetime(1899, 12, 31, 10, tzinfo=UTC)
    # wrong shapes: the order is kept, the shapes recorded
    assert "wrong-shapes" in orders
    # numbers too large for their column: NULL plus an issue
    assert orders["big-number"]["order_number"] is None or isinstance(
        orders["big-number"]["order_number"], str
    )
    assert orders["big-number"]["billing_total"] is None
    # every issue row is complete
    for issue in issues.values():
        assert issue["message"] and issue["table_name"] and issue["column_name"]
