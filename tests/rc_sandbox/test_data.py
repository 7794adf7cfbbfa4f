"""Generated data: determinism, shapes, units, expected rows, mutations and indexes (no HTTP)."""

from __future__ import annotations

import json
import random
import re
import threading
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from support.expected import expected_issues, expected_rows

from rc_common.paths import parse_object_url
from rc_sandbox import OrderQuery, SandboxConfig, SandboxStore
from rc_sandbox.model import to_us

EXAMPLES = Path("/work/shared/readycloud/examples")
if not EXAMPLES.exists():  # CI lays shared/ beside the clone
    EXAMPLES = Path(__file__).resolve().parents[3] / "shared" / "readycloud" / "examples"

# Independent unit tables (not imported from the sandbox) for spot checks.
GRAMS = {"g": "1", "kg": "1000", "lb": "453.59237", "lbs": "453.59237", "oz": "28.349523125"}
METRES = {"m": "1", "cm": "0.01", "mm": "0.001", "in": "0.0254", "ft": "0.3048"}


def parse_money(text: str | None) -> tuple[Decimal, str] | None:
    """'70.59 USD' -> (Decimal('70.59'), 'USD'), written here independently of the sandbox."""
    if text is None:
        return None
    match = re.fullmatch(r"(-?\d+(?:\.\d+)?) ([A-Z]{3})", text)
    assert match, text
    return Decimal(match[1]), match[2]


def parse_unit(text: str | None, table: dict[str, str]) -> Decimal | None:
    """'2.75 lb' -> grams (or metres) via the given table."""
    if text is None:
        return None
    match = re.fullmatch(r"(\d+(?:\.\d+)?) ([a-z]+)", text)
    assert match, text
    return Decimal(match[1]) * Decimal(table[match[2]])


def parse_dt(text: str | None) -> datetime | None:
    """ISO 8601 with Z or +00:00, with or without microseconds."""
    if text is None:
        return None
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?(Z|\+00:00)", text), text
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def store() -> SandboxStore:
    """A 300-order store with some poisoned values (read-only in this module's tests)."""
    return SandboxStore(SandboxConfig(orders=300, seed=3, poison_rate=0.1))


def keyset(doc: Any) -> Any:
    """The nested key structure of a JSON document (lists reduced to their first element)."""
    if isinstance(doc, dict):
        return {k: keyset(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [keyset(doc[0])] if doc else []
    return None


def test_same_seed_gives_identical_bytes_and_other_seed_differs() -> None:
    until = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)  # same seed and end: the same data
    first = SandboxStore(SandboxConfig(orders=150, seed=11, poison_rate=0.2, data_until=until))
    again = SandboxStore(SandboxConfig(orders=150, seed=11, poison_rate=0.2, data_until=until))
    other = SandboxStore(SandboxConfig(orders=150, seed=12, poison_rate=0.2, data_until=until))
    assert first.org_pks() == again.org_pks()
    for org in first.org_pks():
        a = [first.order_bytes(org, pk, "expanded") for pk in first.order_pks(org)]
        b = [again.order_bytes(org, pk, "expanded") for pk in again.order_pks(org)]
        assert a == b
    assert expected_rows(first) == expected_rows(again)
    assert expected_issues(first) == expected_issues(again)
    other_docs = other.orders_json(other.org_pks()[0])
    assert other_docs != first.orders_json(first.org_pks()[0])


def test_pks_are_opaque_and_unique(store: SandboxStore) -> None:
    orgs = store.org_pks()
    assert len(orgs) == 2 and not any(pk.isdigit() and len(pk) < 3 for pk in orgs)
    urls: list[str] = []
    for org in orgs:
        for doc in store.orders_json(org):
            urls.append(doc["url"])
            for box in doc["boxes"]:
                urls.append(box["url"])
                urls.extend(item["url"] for item in box["items"])
    assert len(urls) == len(set(urls))
    ref = parse_object_url(urls[0])
    assert ref.org_pk in orgs and ref.order_pk and ref.box_pk is None
    for url in urls:
        assert url.startswith("/api/v2/orgs/") and url.endswith("/")
        assert re.fullmatch(r"[A-Za-z0-9/_\-]+", url), url


def test_documents_have_the_example_shapes(store: SandboxStore) -> None:
    example = json.loads((EXAMPLES / "orders_list_expand_boxes_items.json").read_text("utf-8"))
    want_order = keyset(example["results"][0])
    org = store.org_pks()[0]
    docs = store.orders_json(org)
    for doc in docs:
        assert set(doc) == set(want_order)
        assert list(doc) == list(example["results"][0])  # same key order
        assert set(doc["billing"]) == set(want_order["billing"])
        assert set(doc["shipping"]) == set(want_order["shipping"])
        for role in ("ship_to", "ship_from"):
            if doc["shipping"][role] is not None:
                assert set(doc["shipping"][role]) == set(want_order["shipping"]["ship_to"])
        for box in doc["boxes"]:
            assert set(box) == set(want_order["boxes"][0])
            for item in box["items"]:
                assert set(item) == set(want_order["boxes"][0]["items"][0])
    item_example = json.loads((EXAMPLES / "item.json").read_text("utf-8"))
    assert set(item_example) == set(docs[0]["boxes"][0]["items"][0]) if docs[0]["boxes"] else True


def test_data_is_varied_and_hostile(store: SandboxStore) -> None:
    text = "".join(
        store.order_bytes(org, pk, "expanded").decode()  # type: ignore[union-attr]
        for org in store.org_pks()
        for pk in store.order_pks(org)
    )
    for needle in ("'; DROP TABLE orders; --", "🚀", "東京", "شركة", "𝔘", '\\"Quoted\\"', '""'):  # noqa: RUF001
        assert needle in text, needle
    docs = [d for org in store.org_pks() for d in store.orders_json(org)]
    currencies = {d["billing"]["subtotal"].split(" ")[1] for d in docs}
    assert {"USD", "EUR", "JPY"} <= currencies
    units = Counter()
    stamps = Counter()
    for d in docs:
        stamps[_style(d["nested_updated_at"])] += 1
        for box in d["boxes"]:
            for key in ("weight", "length"):
                if isinstance(box[key], str) and " " in box[key]:
                    units[box[key].split(" ")[1]] += 1
            stamps[_style(box["created_at"])] += 1
    assert {"g", "kg", "lb", "lbs", "oz", "m", "cm", "mm", "in", "ft"} <= set(units)
    assert {"Z", "Z.us", "+00:00", "+00:00.us"} <= set(stamps)
    counts = Counter(d["nested_updated_at"] for d in docs)
    assert counts.most_common(1)[0][1] >= 10  # ties on nested_updated_at
    assert any(1 <= len(d["boxes"]) <= 3 for d in docs)
    assert max(len(d["boxes"]) for d in docs) <= 3
    assert max(len(b["items"]) for d in docs for b in d["boxes"]) <= 5
    assert any(d["shipping"]["ship_from"] is None for d in docs)
    assert any(d["tags"] for d in docs) and any(d["custom_fields"] for d in docs)


def _style(text: str) -> str:
    zone = "Z" if text.endswith("Z") else "+00:00"
    return zone + (".us" if "." in text else "")


def test_nested_updated_at_is_the_latest_time_of_the_order(store: SandboxStore) -> None:
    for org in store.org_pks():
        for doc in store.orders_json(org):
            nested = parse_dt(doc["nested_updated_at"])
            assert nested is not None
            assert parse_dt(doc["created_at"]) <= parse_dt(doc["updated_at"]) <= nested  # type: ignore[operator]
            for box in doc["boxes"]:
                assert parse_dt(box["updated_at"]) <= nested  # type: ignore[operator]
                for item in box["items"]:
                    assert parse_dt(item["updated_at"]) <= nested  # type: ignore[operator]


def test_expected_rows_match_the_json_parsed_independently(store: SandboxStore) -> None:
    issues = {(i[1], i[2], i[3]) for i in expected_issues(store)}
    assert issues, "poison_rate=0.1 should poison something"
    rows = expected_rows(store)
    orders = {r["order_pk"]: r for r in rows["orders"]}
    boxes = {r["box_pk"]: r for r in rows["boxes"]}
    items = {r["item_pk"]: r for r in rows["items"]}
    addresses = {(r["order_pk"], r["role"]): r for r in rows["addresses"]}
    seen_boxes = seen_items = 0
    for org in store.org_pks():
        for doc in store.orders_json(org):
            ref = parse_object_url(doc["url"])
            row = orders[ref.order_pk]  # type: ignore[index]
            assert row["org_pk"] == org and row["url"] == doc["url"]
            for key in ("primary_id", "order_number", "message", "terms", "po_number"):
                assert row[key] == doc[key]
            for key in ("created_at", "updated_at", "nested_updated_at", "printed_at"):
                assert row[key] == parse_dt(doc[key]), key
            if (ref.order_pk, "orders", "ordered_at") in issues:
                assert row["ordered_at"] is None and doc["ordered_at"] is not None
            else:
                assert row["ordered_at"] == parse_dt(doc["ordered_at"])
            for key in ("subtotal", "shipping", "tax", "total"):
                if (ref.order_pk, "orders", f"billing_{key}") in issues:
                    assert row[f"billing_{key}"] is None
                    continue
                amount, currency = parse_money(doc["billing"][key])  # type: ignore[misc]
                assert row[f"billing_{key}"] == amount and row["billing_currency"] == currency
            assert row["billing_status"] == doc["billing"]["status"]
            assert row["ship_via"] == doc["shipping"]["ship_via"]
            assert row["source_name"] == doc["source"]["name"]
            assert row["tags"] == doc["tags"] and row["custom_fields"] == doc["custom_fields"]
            for role in ("ship_to", "ship_from"):
                address = doc["shipping"][role]
                if address is None:
                    assert (ref.order_pk, role) not in addresses
                else:
                    got = addresses[(ref.order_pk, role)]
                    assert {k: got[k] for k in address} == address
            for box in doc["boxes"]:
                seen_boxes += 1
                brow = boxes[parse_object_url(box["url"]).box_pk]  # type: ignore[index]
                bad = {c for (o, t, c) in issues if o == ref.order_pk and t == "boxes"}
                for key, column, table in (
                    ("weight", "weight_g", GRAMS),
                    ("length", "length_m", METRES),
                    ("width", "width_m", METRES),
                    ("height", "height_m", METRES),
                ):
                    if column in bad and brow[column] is None:
                        continue
                    assert brow[column] == parse_unit(box[key], table), (key, box[key])
                for key in ("ship_cost", "insured_value", "declared_value", "cod_value"):
                    if key in bad and brow[key] is None:
                        continue
                    amount, currency = parse_money(box[key])  # type: ignore[misc]
                    assert brow[key] == amount and brow["currency"] == currency
                if not ("delivered_at" in bad and brow["delivered_at"] is None):
                    assert brow["delivered_at"] == parse_dt(box["delivered_at"])
                assert brow["tracking_number"] == box["tracking_number"]
                assert brow["shipper_release"] is box["shipper_release"]
                for item in box["items"]:
                    seen_items += 1
                    irow = items[parse_object_url(item["url"]).item_pk]  # type: ignore[index]
                    bad_i = {c for (o, t, c) in issues if o == ref.order_pk and t == "items"}
                    if not ("quantity" in bad_i and irow["quantity"] is None):
                        assert irow["quantity"] == item["quantity"]
                    if not ("unit_weight_g" in bad_i and irow["unit_weight_g"] is None):
                        assert irow["unit_weight_g"] == parse_unit(item["unit_weight"], GRAMS)
                    amount, currency = parse_money(item["unit_price"])  # type: ignore[misc]
                    assert irow["unit_price"] == amount and irow["currency"] == currency
                    assert irow["created_at"] == parse_dt(item["created_at"])
    assert seen_boxes == len(boxes) and seen_items == len(items)


def test_known_unit_conversions() -> None:
    """Spot-check a few exact conversions of the sandbox's unit model."""
    from rc_sandbox.model import Length, Money, Weight

    assert Weight(Decimal("2.75"), "lb").grams == Decimal("1247.3790175")
    assert Weight(Decimal("12.5"), "oz").grams == Decimal("354.3690390625")
    assert Weight(Decimal("1.247"), "kg").grams == Decimal("1247")
    assert Length(Decimal("12.00"), "in").metres == Decimal("0.3048")
    assert Length(Decimal("304.8"), "mm").metres == Decimal("0.3048")
    assert Length(Decimal("1.000"), "ft").metres == Decimal("0.3048")
    assert Money(Decimal("1500"), "JPY").render() == "1500 JPY"
    assert Money(Decimal("70.59"), "USD").render() == "70.59 USD"


def test_poisoned_values_are_listed_and_unparseable(store: SandboxStore) -> None:
    issues = expected_issues(store)
    assert {t for _, _, t, _, _ in issues} <= {"orders", "boxes", "items"}
    rows = expected_rows(store)
    for org_pk, order_pk, table, column, raw in issues:
        assert org_pk in store.org_pks()
        raw_in_json = store.order_bytes(org_pk, order_pk, "expanded")
        assert json.dumps(raw, ensure_ascii=False).encode() in raw_in_json  # type: ignore[operator]
        matching = [r for r in rows[table] if r["order_pk"] == order_pk and r[column] is None]
        assert matching, (table, column, raw)


def test_expected_rows_window(store: SandboxStore) -> None:
    org = store.org_pks()[0]
    everything = expected_rows(store, org)["orders"]
    stamps = sorted(r["nested_updated_at"] for r in everything)
    since, until = stamps[len(stamps) // 4], stamps[3 * len(stamps) // 4]
    window = expected_rows(store, org, since, until)
    want = [r for r in everything if since <= r["nested_updated_at"] < until]
    assert sorted(r["order_pk"] for r in window["orders"]) == sorted(r["order_pk"] for r in want)
    pks = {r["order_pk"] for r in want}
    assert all(r["order_pk"] in pks for r in window["items"])
    before = expected_rows(store, org, until=since)["orders"]
    assert sorted(r["order_pk"] for r in before) == sorted(
        r["order_pk"] for r in everything if r["nested_updated_at"] < since
    )


def _fresh_store(**knobs: Any) -> tuple[SandboxStore, list[datetime]]:
    now = [datetime(2030, 1, 1, tzinfo=UTC)]
    knobs.setdefault("orders", 60)
    store = SandboxStore(SandboxConfig(**knobs), clock=lambda: now[0])
    return store, now


def _latest(store: SandboxStore) -> datetime:
    return max(r["nested_updated_at"] for r in expected_rows(store)["orders"])


def test_mutations_bump_nested_updated_at_strictly_and_updated_at_only_for_the_order() -> None:
    store, now = _fresh_store()
    org = store.org_pks()[0]
    pk = store.order_pks(org)[0]
    order = store.get_order(org, pk)
    assert order is not None
    before_updated = order.updated_at
    if order.boxes:
        store.add_item(org, pk, order.boxes[0].pk)
    else:
        store.add_box(org, pk)
    assert order.nested_updated_at == now[0] and order.updated_at == before_updated
    first = order.nested_updated_at
    store.update_order(org, pk, message="new message")  # same clock value: still strictly later
    assert order.nested_updated_at > first and order.updated_at == order.nested_updated_at
    assert store.orders_json(org)  # still renders
    doc = json.loads(store.order_bytes(org, pk, "expanded"))  # type: ignore[arg-type]
    assert doc["message"] == "new message"
    assert parse_dt(doc["nested_updated_at"]) == order.nested_updated_at
    # a clock going backwards never moves timestamps backwards
    now[0] = datetime(2020, 1, 1, tzinfo=UTC)
    store.change_address(org, pk, "ship_to", city="Nowhere")
    assert order.nested_updated_at > first and order.ship_to and order.ship_to.city == "Nowhere"
    assert _latest(store) == order.nested_updated_at


def test_every_mutation_kind_changes_lists_and_expectations() -> None:
    store, now = _fresh_store()
    org = store.org_pks()[0]
    latest = OrderQuery(ordering="nested_updated_at", descending=True)
    pks = store.order_pks(org)
    count = store.order_count(org)
    new = store.create_order(org)
    assert store.order_count(org) == count + 1
    assert store.query(org, latest, 0, 1)[1][0].pk == new
    store.delete_order(org, pks[1])
    assert pks[1] not in store.order_pks(org) and store.get_order(org, pks[1]) is None
    assert pks[1] not in {r["order_pk"] for r in expected_rows(store, org)["orders"]}
    target = next(pk for pk in pks[2:] if store.get_order(org, pk).boxes)  # type: ignore[union-attr]
    box = store.remove_box(org, target)
    assert box not in {r["box_pk"] for r in expected_rows(store, org)["boxes"]}
    assert store.query(org, latest, 0, 1)[1][0].pk == target
    box_pk = store.add_box(org, target, items=2)
    item_pk = store.add_item(org, target, box_pk)
    store.set_item_quantity(org, target, box_pk, item_pk, 42)
    rows = expected_rows(store, org)
    assert [r["quantity"] for r in rows["items"] if r["item_pk"] == item_pk] == [42]
    assert len([r for r in rows["items"] if r["box_pk"] == box_pk]) == 3
    store.update_box(org, target, box_pk, weight="2 kg", tracking_number="TRK 1")
    brow = next(r for r in expected_rows(store, org)["boxes"] if r["box_pk"] == box_pk)
    assert brow["weight_g"] == Decimal(2000) and brow["tracking_number"] == "TRK 1"
    store.update_order(org, target, billing_total="12.50 EUR", ordered_at="2024-05-01T00:00:00Z")
    orow = next(r for r in expected_rows(store, org)["orders"] if r["order_pk"] == target)
    assert orow["billing_total"] == Decimal("12.50")
    assert orow["ordered_at"] == datetime(2024, 5, 1, tzinfo=UTC)
    with pytest.raises(ValueError):
        store.update_order(org, target, nested_updated_at=now[0])
    with pytest.raises(KeyError):
        store.update_order(org, "no-such-order", message="x")
    rng = random.Random(5)
    before = store.mutations
    for _ in range(30):
        store.mutate_random(rng)
    assert store.mutations == before + 30
    # indexes stay consistent with the model after all of that
    for name in ("created_at", "nested_updated_at", "updated_at"):
        q = OrderQuery(ordering=name)
        count, page = store.query(org, q, 0, 10_000)
        assert count == store.order_count(org) == len(page)
        values = [(to_us(getattr(o, name)), o.pk) for o in page]
        assert values == sorted(values)


def test_query_filters_and_orderings_against_brute_force(store: SandboxStore) -> None:
    org = store.org_pks()[1]
    every = [store.get_order(org, pk) for pk in store.order_pks(org)]
    stamps = sorted(to_us(o.nested_updated_at) for o in every)  # type: ignore[union-attr]
    lo, hi = stamps[20], stamps[-20]
    cases = [
        OrderQuery(ranges=(("nested_updated_at", lo, hi),), ordering="nested_updated_at"),
        OrderQuery(ranges=(("nested_updated_at", lo, hi),)),
        OrderQuery(ranges=(("created_at", lo, None), ("ordered_at", None, hi))),
        OrderQuery(ranges=(("printed_at", lo, None),), ordering="updated_at", descending=True),
        OrderQuery(billing_in=frozenset({"paid"}), ordering="ordered_at"),
        OrderQuery(primary_id=every[3].primary_id),  # type: ignore[union-attr]
    ]
    for q in cases:
        want = []
        for o in every:
            assert o is not None
            ok = True
            for name, a, b in q.ranges:
                value = getattr(o, name)
                if (
                    value is None
                    or (a is not None and to_us(value) < a)
                    or (b is not None and to_us(value) >= b)
                ):
                    ok = False
            if q.billing_in is not None and o.billing_status not in q.billing_in:
                ok = False
            if q.primary_id is not None and o.primary_id != q.primary_id:
                ok = False
            if ok:
                want.append(o)
        null = -(1 << 62)
        want.sort(
            key=lambda o: (
                to_us(getattr(o, q.ordering)) if getattr(o, q.ordering) else null,
                o.pk,
            ),
            reverse=q.descending,
        )
        count, page = store.query(org, q, 0, 10_000)
        assert count == len(want) and [o.pk for o in page] == [o.pk for o in want], q
        count, page = store.query(org, q, 5, 7)
        assert [o.pk for o in page] == [o.pk for o in want[5:12]]


def test_store_is_thread_safe_under_concurrent_mutation_and_reads() -> None:
    store, _ = _fresh_store(orders=300)
    org = store.org_pks()[0]
    stop = threading.Event()
    errors: list[BaseException] = []

    def mutate(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(150):
                store.mutate_random(rng)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def read() -> None:
        q = OrderQuery(ordering="nested_updated_at")
        try:
            while not stop.is_set():
                count, docs = store.page_bytes(org, q, 0, 50, "expanded")
                assert len(docs) == min(50, count)
                expected_rows(store, org, since=datetime(2024, 1, 1, tzinfo=UTC))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    readers = [threading.Thread(target=read) for _ in range(2)]
    writers = [threading.Thread(target=mutate, args=(n,)) for n in range(3)]
    for t in readers + writers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    for t in readers:
        t.join()
    assert not errors
    assert store.mutations >= 450


def test_tie_fraction_controls_shared_timestamps() -> None:
    tied = SandboxStore(SandboxConfig(orders=400, tie_fraction=0.5, tie_values=3))
    loose = SandboxStore(SandboxConfig(orders=400, tie_fraction=0.0))
    for store, low, high in ((tied, 150, 260), (loose, 0, 5)):
        stamps = Counter(r["nested_updated_at"] for r in expected_rows(store)["orders"])
        shared = sum(n for n in stamps.values() if n > 1)
        assert low <= shared <= high, shared
