"""Every SQL block of README.md and docs/warehouse.md runs on both databases and gives the
documented result on known sandbox data (issue 11).

The SQL is read from the Markdown itself, so the docs and this test cannot drift apart. A
block labelled `PostgreSQL:` or `SQLite:` runs on that database only; any other block on both.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from rc_sandbox import SandboxConfig, SandboxStore
from rc_sandbox.model import Order
from warehouse.db import make_engine
from warehouse.load import Loader
from warehouse.migrate import upgrade
from warehouse.normalize import normalize_orders

REPO = Path(__file__).resolve().parents[2]
DOCS = (REPO / "README.md", REPO / "docs" / "warehouse.md")
DIALECTS = {"PostgreSQL:": ("postgresql",), "SQLite:": ("sqlite",)}
BOTH = ("sqlite", "postgresql")
AS_OF = datetime(2026, 11, 23, tzinfo=UTC)  # the instant the orders_as_of sample uses
COUNTRY = {  # the sandbox's country texts, coded by hand (not by rc-sync's derivation)
    "United States": "US",
    "USA": "US",
    "Canada": "CA",
    "CA": "CA",
    "Deutschland": "DE",
    "Switzerland": "CH",
    "日本": "JP",
    "United Kingdom": "GB",
    "Brasil": "BR",
    "مصر": "EG",
    "PL": "PL",
    "Ísland": "IS",
    "Australia": "AU",
}


def doc_queries() -> list[tuple[str, str, tuple[str, ...], str]]:
    """(file, heading, dialects, sql) of every ```sql block in the docs."""
    found = []
    for path in DOCS:
        heading, label, block = "", "", None
        for line in path.read_text(encoding="utf-8").splitlines():
            if block is not None:
                if line.startswith("```"):
                    found.append((path.name, heading, DIALECTS.get(label, BOTH), "\n".join(block)))
                    block, label = None, ""
                else:
                    block.append(line)
            elif line.startswith("```sql"):
                block = []
            elif line.startswith("#"):
                heading, label = line.lstrip("#").strip(), ""
            elif line.strip() in (*DIALECTS, "Both databases:"):
                label = line.strip()
    return found


def exact(value: Any) -> Any:
    """A number as the Decimal it displays as (SQLite REAL included); other values as text."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, int | Decimal):
        return Decimal(value)
    return None if value is None else str(value)


# ------------------------------------------------------------------ the known data


class Data:
    """The sandbox's data, loaded into both databases, and what the docs' queries must give."""

    def __init__(self) -> None:
        self.store = SandboxStore(SandboxConfig(orgs=2, orders=500, seed=5))
        self.orders: list[Order] = [
            o
            for org in self.store.org_pks()
            for o in (self.store.get_order(org, pk) for pk in self.store.order_pks(org))
            if o is not None
        ]
        self.before = {(o.org_pk, o.pk): o.shipping_status for o in self.orders}
        self.nested = {(o.org_pk, o.pk): o.nested_updated_at for o in self.orders}
        # Later versions: 20 orders are shipped (history gets status changes).
        self.shipped = [o for o in self.orders if o.shipping_status != "shipped"][:20]
        # The order the tracking-number sample looks up (its literal is swapped for this one).
        self.tracked = next((o, b) for o in self.orders for b in o.boxes if b.tracking_number)

    def load(self, engine: Engine) -> None:
        at = datetime.now(UTC)
        for org in self.store.org_pks():
            docs = self.store.orders_json(org)
            Loader(engine).load_batch(org, normalize_orders(org, docs, at))


@pytest.fixture(scope="module")
def data() -> Data:
    return Data()


@pytest.fixture(scope="module")
def engines(data: Data, tmp_path_factory: pytest.TempPathFactory, pg_admin_url: str) -> Any:
    """Both databases with the same data: a first load, then the shipped versions."""
    sqlite_url = f"sqlite:///{tmp_path_factory.mktemp('docq') / 'w.db'}"
    schema = f"docq_{datetime.now(UTC):%H%M%S%f}"
    made = {
        "sqlite": make_engine(sqlite_url, None),
        "postgresql": make_engine(pg_admin_url, schema),
    }
    for engine in made.values():
        upgrade(engine)
        data.load(engine)
    for order in data.shipped:
        data.store.update_order(order.org_pk, order.pk, shipping_status="shipped")
    for engine in made.values():
        data.load(engine)
    yield made
    for engine in made.values():
        engine.dispose()
    with sa.create_engine(pg_admin_url).begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


def _goods(item: Any) -> bool:
    if item.kind is None:
        return item.unit_price is None or item.unit_price.amount >= 0
    return bool(item.kind == "goods")


def _lines(data: Data) -> list[tuple[Order, Any, Any]]:
    return [(o, b, i) for o in data.orders for b in o.boxes for i in b.items]


# ------------------------------------------------------------------ expectations per query


def check_revenue_30_days(rows: list[tuple[Any, ...]], data: Data, _: str) -> None:
    today = datetime.now(UTC).date()
    # one row per org, day and currency (the view is per org; the query does not show it)
    want: dict[tuple[str, str, str], list[Any]] = defaultdict(lambda: [0, Decimal(0)])
    for o in data.orders:
        if o.ordered_at is None:
            continue
        day = o.ordered_at.astimezone(UTC).date()
        if day >= today - timedelta(days=30):
            key = (o.org_pk, day.isoformat(), o.currency)
            want[key][0] += 1
            want[key][1] += o.billing_total.amount if o.billing_total else 0
    assert want, "the data should reach the last 30 days"
    got = [(exact(d), c, int(n), exact(t)) for d, c, n, t in rows]
    assert [(d, c) for d, c, _, _ in got] == sorted((d, c) for d, c, _, _ in got)
    assert sorted(got) == sorted((d, c, n, t) for (_, d, c), (n, t) in want.items())


def check_revenue_per_currency(rows: list[tuple[Any, ...]], data: Data, _: str) -> None:
    want: dict[str, list[Any]] = defaultdict(lambda: [0, Decimal(0)])
    for o in data.orders:
        want[o.currency][0] += 1
        want[o.currency][1] += o.billing_total.amount if o.billing_total else 0
    assert [(c, int(n), exact(t)) for c, n, t in rows] == [
        (c, n, t) for c, (n, t) in sorted(want.items())
    ]


def check_best_sellers(rows: list[tuple[Any, ...]], data: Data, _: str) -> None:
    units: Counter[str | None] = Counter()
    orders: dict[str | None, set[str]] = defaultdict(set)
    for o, _, i in _lines(data):
        if _goods(i):
            units[i.part_number] += i.quantity
            orders[i.part_number].add(o.pk)
    assert len(rows) == 20
    assert [int(u) for _, u, _ in rows] == sorted(units.values(), reverse=True)[:20]
    for part, u, n in rows:
        assert (int(u), int(n)) == (units[part], len(orders[part])), part


def check_tracking(rows: list[tuple[Any, ...]], data: Data, _: str) -> None:
    order, box = data.tracked
    assert [(r[0], r[2]) for r in rows] == [(order.primary_id, box.tracking_number)]


def check_paid_not_delivered(rows: list[tuple[Any, ...]], data: Data, _: str) -> None:
    want = {
        (o.org_pk, o.primary_id)
        for o in data.orders
        if o.billing_status == "paid" and not any(b.delivered_at for b in o.boxes)
    }
    assert want and {(r[0], r[1]) for r in rows} == want


def check_no_issues(rows: list[tuple[Any, ...]], data: Data, _: str) -> None:
    assert rows == []  # the data set has no unparseable value


def check_sync_state(rows: list[tuple[Any, ...]], data: Data, _: str) -> None:
    assert {r[0] for r in rows} <= set(data.store.org_pks())


def check_shipped_per_week(rows: list[tuple[Any, ...]], data: Data, _: str) -> None:
    want = Counter(o.ship_via for o in data.shipped)
    got: Counter[Any] = Counter()
    for _, carrier, n, _ in rows:
        got[carrier] += int(n)
    assert got == want


def check_as_of(rows: list[tuple[Any, ...]], data: Data, _: str) -> None:
    want = Counter(status for key, status in data.before.items() if data.nested[key] <= AS_OF)
    assert {status: int(n) for status, n in rows} == dict(want)


def check_versions(rows: list[tuple[Any, ...]], data: Data, _: str) -> None:
    order = data.shipped[0]
    assert len({r[0] for r in rows}) == 2  # the first version and the shipped one
    assert {r[2] for r in rows} == {data.before[(order.org_pk, order.pk)], "shipped"}


def check_countries(rows: list[tuple[Any, ...]], data: Data, _: str) -> None:
    lines: Counter[str | None] = Counter()
    units: Counter[str | None] = Counter()
    for o, _, i in _lines(data):
        if _goods(i):
            code = COUNTRY.get(o.ship_to.country) if o.ship_to and o.ship_to.country else None
            lines[code] += 1
            units[code] += i.quantity
    assert {c: (int(n), int(u)) for c, n, u in rows} == {c: (lines[c], units[c]) for c in lines}
    assert [int(u) for *_, u in rows] == sorted(units.values(), reverse=True)


CHECKS = {
    "Revenue per day and currency for the last 30 days": check_revenue_30_days,
    "Revenue per currency, exact on both databases": check_revenue_per_currency,
    "Best-selling SKUs": check_best_sellers,
    "Find an order by tracking number": check_tracking,
    "Paid orders not yet delivered": check_paid_not_delivered,
    "Open load issues per column": check_no_issues,
    "Sync freshness per org": check_sync_state,
    "Time from order to shipped, per carrier and week": check_shipped_per_week,
    "The orders as they were at an instant (orders_as_of): the shipping backlog then": check_as_of,
    "Every version of one order, with what its boxes held": check_versions,
    "Querying the tables": check_countries,
}


def test_every_doc_query_has_a_check() -> None:
    headings = {heading for _, heading, _, _ in doc_queries()}
    assert headings == set(CHECKS)


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("source", "heading", "dialect", "sql"),
    [
        pytest.param(f, h, d, q, id=f"{f}:{h[:40]}:{d}")
        for f, h, dialects, q in doc_queries()
        for d in dialects
    ],
)
def test_doc_query(
    engines: dict[str, Engine], data: Data, source: str, heading: str, dialect: str, sql: str
) -> None:
    sql = re.sub(r"'1Z[0-9A-F]{16}'", f"'{data.tracked[1].tracking_number}'", sql)
    params = {"as_of": AS_OF, "primary_id": data.shipped[0].primary_id}
    if dialect == "sqlite":
        params["as_of"] = AS_OF.isoformat(timespec="microseconds")
    # Comment lines are for the reader (one names :as_of, which would count as a parameter).
    sql = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    statement = sa.text(sql.rstrip().rstrip(";"))
    used = {k: v for k, v in params.items() if f":{k}" in sql}
    with engines[dialect].connect() as conn:
        rows = [tuple(r) for r in conn.execute(statement, used)]
    CHECKS[heading](rows, data, dialect)
