"""Derived columns on both databases: exact money (micros), country codes, line kinds (issue 11)."""

from __future__ import annotations

import copy
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from rc_sandbox.config import SandboxConfig
from rc_sandbox.generator import CITIES
from rc_sandbox.model import Order
from rc_sandbox.store import SandboxStore
from warehouse import derive
from warehouse.load import Loader
from warehouse.normalize import normalize_orders
from warehouse.rebuild import rebuild_org

AT = datetime(2026, 11, 1, tzinfo=UTC)


def exact(value: Any) -> Decimal | None:
    """A number read from either database as the Decimal it displays as (SQLite: REAL)."""
    if value is None:
        return None
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(value)


@pytest.fixture(scope="module")
def store() -> SandboxStore:
    return SandboxStore(SandboxConfig(orgs=1, orders=400, seed=11))


def _load(engine: Engine, store: SandboxStore) -> str:
    org = store.org_pks()[0]
    Loader(engine).load_batch(org, normalize_orders(org, store.orders_json(org), AT))
    return org


def _orders(store: SandboxStore, org: str) -> list[Order]:
    return [o for o in (store.get_order(org, pk) for pk in store.order_pks(org)) if o is not None]


def _is_goods(kind: str | None, price: Decimal | None) -> bool:
    if kind is None:
        return price is None or price >= 0
    return kind == "goods"


# ------------------------------------------------------------------ exact money


def test_line_totals_and_their_sums_are_exact(migrated: Engine, store: SandboxStore) -> None:
    org = _load(migrated, store)
    expected: dict[str, Decimal] = {}
    per_currency: dict[str, Decimal] = defaultdict(Decimal)
    for order in _orders(store, org):
        for box in order.boxes:
            for item in box.items:
                if item.unit_price is None:
                    continue
                total = item.unit_price.amount * item.quantity
                expected[item.pk] = total
                per_currency[item.unit_price.currency] += total
    with migrated.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT item_pk, line_total, line_total_micros FROM order_lines")
        ).all()
        sums = dict(
            conn.execute(
                sa.text(
                    "SELECT currency, SUM(line_total_micros) / 1000000.0 FROM order_lines "
                    "GROUP BY currency"
                )
            ).all()
        )
    assert len(rows) == len(expected) > 500
    for item_pk, line_total, micros in rows:
        assert exact(line_total) == expected[item_pk], item_pk
        assert micros == int(expected[item_pk] * 1_000_000)
    assert {c: exact(v) for c, v in sums.items()} == dict(per_currency)


def test_daily_summary_money_is_exact(migrated: Engine, store: SandboxStore) -> None:
    org = _load(migrated, store)
    totals: dict[tuple[str, str], list[Decimal]] = defaultdict(lambda: [Decimal(0)] * 4)
    for order in _orders(store, org):
        if order.ordered_at is None:
            continue
        key = (order.ordered_at.astimezone(UTC).date().isoformat(), order.currency)
        amounts = (
            order.billing_subtotal,
            order.billing_shipping,
            order.billing_tax,
            order.billing_total,
        )
        for index, money in enumerate(amounts):
            if money is not None:
                totals[key][index] += money.amount
    with migrated.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT day, billing_currency, billing_subtotal, billing_shipping, billing_tax, "
                "billing_total, billing_total_micros FROM daily_order_summary"
            )
        ).all()
        grand = conn.execute(
            sa.text(
                "SELECT billing_currency, SUM(billing_total_micros) / 1000000.0 "
                "FROM daily_order_summary GROUP BY billing_currency"
            )
        ).all()
    assert len(rows) == len(totals)
    for day, currency, *money, micros in rows:
        want = totals[(str(day), currency)]
        assert [exact(v) for v in money] == want, (day, currency)
        assert micros == int(want[3] * 1_000_000)
    by_currency: dict[str, Decimal] = defaultdict(Decimal)
    for (_, currency), values in totals.items():
        by_currency[currency] += values[3]
    assert {c: exact(v) for c, v in grand} == dict(by_currency)


def test_money_reads_back_exactly(migrated: Engine, example_docs: list[dict[str, Any]]) -> None:
    doc = copy.deepcopy(example_docs[0])
    amounts = ["0.10 USD", "47.50 USD", "1234567890.12 USD", "0.000001 USD", "-19.99 USD"]
    doc["billing"] = {
        "subtotal": amounts[0],
        "shipping": amounts[1],
        "tax": amounts[3],
        "total": amounts[2],
    }
    doc["boxes"][0]["items"][0]["unit_price"] = amounts[4]
    Loader(migrated).load_batch("7", normalize_orders("7", [doc], AT))
    with migrated.connect() as conn:
        order = conn.execute(
            sa.text(
                "SELECT billing_subtotal, billing_shipping, billing_tax, billing_total, "
                "billing_subtotal_micros, billing_shipping_micros, billing_tax_micros, "
                "billing_total_micros FROM orders"
            )
        ).one()
        price = conn.execute(
            sa.select(sa.column("unit_price"), sa.column("unit_price_micros"))
            .select_from(sa.table("items"))
            .where(sa.column("unit_price_micros") < 0)
        ).one()
    assert [exact(v) for v in order[:4]] == [
        Decimal("0.10"),
        Decimal("47.50"),
        Decimal("0.000001"),
        Decimal("1234567890.12"),
    ]
    assert list(order[4:]) == [100_000, 47_500_000, 1, 1_234_567_890_120_000]
    assert (exact(price[0]), price[1]) == (Decimal("-19.99"), -19_990_000)


def test_money_micros_edge_cases() -> None:
    amounts = pd.Series(
        [Decimal("1.5"), None, Decimal("0.0000001"), Decimal("99999999999999"), Decimal("-0.01")]
    )
    micros, bad = derive.money_micros(amounts)
    assert micros.tolist() == [1_500_000, None, None, None, -10_000]
    assert bad.tolist() == [False, False, True, True, False]
    assert derive.micros_to_decimal(1_500_000) == Decimal("1.5")


def test_too_precise_amount_is_a_load_issue(
    migrated: Engine, example_docs: list[dict[str, Any]]
) -> None:
    doc = copy.deepcopy(example_docs[0])
    doc["billing"]["total"] = "10.1234567 USD"
    batch = normalize_orders("7", [doc], AT)
    Loader(migrated).load_batch("7", batch)
    with migrated.connect() as conn:
        issue = conn.execute(
            sa.text(
                "SELECT column_name, raw_value FROM load_issues "
                "WHERE column_name = 'billing_total_micros'"
            )
        ).one()
        total, micros = conn.execute(
            sa.text("SELECT billing_total, billing_total_micros FROM orders")
        ).one()
    assert issue == ("billing_total_micros", "10.1234567")
    assert micros is None and exact(total) == Decimal("10.1234567")


# ------------------------------------------------------------------ country codes

CITY_CODES = {
    "United States": "US",
    "USA": "US",
    "Canada": "CA",
    "Deutschland": "DE",
    "Switzerland": "CH",
    "日本": "JP",
    "United Kingdom": "GB",
    "Brasil": "BR",
    "مصر": "EG",
    "PL": "PL",
    "CA": "CA",
    "Ísland": "IS",
    "Australia": "AU",
}


def test_every_sandbox_country_is_recognised() -> None:
    countries = pd.Series([c[3] for c in CITIES])
    codes, bad = derive.derive_country_codes(countries)
    assert dict(zip(countries, codes, strict=True)) == CITY_CODES
    assert not bad.any()


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("united states of america", "US"),
        (" U.S.A. ", "US"),
        ("UK", "GB"),
        ("Great Britain", "GB"),
        ("México", "MX"),
        ("Mexico", "MX"),
        ("Korea, Republic of", "KR"),
        ("South Korea", "KR"),
        ("Türkiye", "TR"),
        ("Turkey", "TR"),
        ("Österreich", "AT"),
        ("Schweiz", "CH"),
        ("España", "ES"),
        ("usa", "US"),
        ("DEU", "DE"),
    ],
)
def test_country_spellings(text: str, code: str) -> None:
    codes, bad = derive.derive_country_codes(pd.Series([text]))
    assert codes.tolist() == [code]
    assert not bad.any()


def test_blank_country_is_null_without_issue() -> None:
    codes, bad = derive.derive_country_codes(pd.Series(["  ", "", None], dtype=object))
    assert codes.tolist() == [None, None, None]
    assert not bad.any()


def test_unknown_country_is_null_with_issue(
    migrated: Engine, example_docs: list[dict[str, Any]]
) -> None:
    docs = copy.deepcopy(example_docs[:2])
    docs[0]["shipping"]["ship_to"]["country"] = "Narnia"
    docs[1]["shipping"]["ship_to"]["country"] = "Canada"
    Loader(migrated).load_batch("7", normalize_orders("7", docs, AT))
    with migrated.connect() as conn:
        rows = dict(
            conn.execute(
                sa.text("SELECT country, country_code FROM addresses WHERE role = 'ship_to'")
            ).all()
        )
        issues = conn.execute(
            sa.text(
                "SELECT table_name, row_key, raw_value FROM load_issues "
                "WHERE column_name = 'country_code'"
            )
        ).all()
        history = conn.execute(
            sa.text("SELECT ship_to_country, ship_to_country_code FROM order_history")
        ).all()
    assert rows == {"Narnia": None, "Canada": "CA"}
    assert issues == [("addresses", "ship_to", "Narnia")]
    assert ("Canada", "CA") in history and ("Narnia", None) in history


# ------------------------------------------------------------------ line kinds


def test_line_kind_rules() -> None:
    frame = pd.DataFrame(
        {
            "kind": ["goods", "Tax", "DISCOUNT", "adjustment", None, None, "shipping", "gift card"],
            "unit_price": [
                Decimal(5),
                Decimal(1),
                Decimal(-2),
                Decimal(-1),
                Decimal(3),
                Decimal(-3),
                Decimal(9),
                Decimal(10),
            ],
        },
        dtype=object,
    )
    kinds, unknown = derive.classify_line_kinds(frame)
    assert kinds.tolist() == [
        "goods",
        "tax",
        "discount",
        "adjustment",
        "goods",
        "adjustment",
        "shipping",
        "other",
    ]
    assert unknown.tolist() == [False] * 7 + [True]


def test_views_count_goods_only(migrated: Engine, store: SandboxStore) -> None:
    org = _load(migrated, store)
    units: dict[tuple[str, str], int] = defaultdict(int)
    sku_units: dict[str | None, int] = defaultdict(int)
    kinds_seen: set[str | None] = set()
    for order in _orders(store, org):
        for box in order.boxes:
            for item in box.items:
                kinds_seen.add(item.kind)
                price = item.unit_price.amount if item.unit_price else None
                if not _is_goods(item.kind, price):
                    continue
                sku_units[item.part_number] += item.quantity
                if order.ordered_at is not None:
                    day = order.ordered_at.astimezone(UTC).date().isoformat()
                    units[(day, order.currency)] += item.quantity
    assert {"tax", "discount", "adjustment"} <= kinds_seen  # the data has non-goods lines
    with migrated.connect() as conn:
        summary = conn.execute(
            sa.text("SELECT day, billing_currency, units FROM daily_order_summary")
        ).all()
        skus = dict(
            conn.execute(
                sa.text(
                    "SELECT part_number, SUM(units) FROM order_lines "
                    "WHERE line_kind = 'goods' GROUP BY part_number"
                )
            ).all()
        )
        all_units = conn.execute(sa.text("SELECT SUM(units) FROM order_lines")).scalar_one()
    assert {(str(d), c): int(u) for d, c, u in summary if u} == dict(units)
    assert {k: int(v) for k, v in skus.items()} == dict(sku_units)
    assert int(all_units) == sum(sku_units.values())


# ------------------------------------------------------------------ rebuild fills them


def test_rebuild_fills_the_derived_columns(migrated: Engine, store: SandboxStore) -> None:
    org = _load(migrated, store)
    columns = {
        "orders": "billing_total_micros",
        "items": "line_kind",
        "addresses": "country_code",
        "order_history": "ship_to_country_code",
        "item_history": "unit_price_micros",
    }

    def filled() -> dict[str, int]:
        with migrated.connect() as conn:
            return {
                table: conn.execute(
                    sa.text(f"SELECT COUNT(*) FROM {table} WHERE {column} IS NOT NULL")
                ).scalar_one()
                for table, column in columns.items()
            }

    before = filled()
    assert all(before.values())
    with migrated.begin() as conn:  # what a database migrated from revision 0004 holds
        for table, column in columns.items():
            conn.execute(sa.text(f"UPDATE {table} SET {column} = NULL"))
        conn.execute(sa.text("UPDATE orders SET normalize_version = 1"))
    assert not any(filled().values())
    rebuild_org(migrated, org)
    assert filled() == before
