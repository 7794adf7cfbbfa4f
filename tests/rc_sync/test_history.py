"""History: every observed version of orders, boxes and items, on SQLite and PostgreSQL.

The sandbox's orders are mutated over several stages (status changes, a box removed, an item
quantity changed, a deletion and a reappearance). Warehouse A follows them with incremental
syncs, a backfill and reconciles, in order; warehouse B receives the same versions in a
shuffled order (late backfills). Both must hold exactly the versions an independent model
of the stages predicts, with contiguous, non-overlapping validity per key.
"""

from __future__ import annotations

import itertools
import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from support import make_settings, warehouse_engine

from rc_sandbox import SandboxConfig, SandboxServer
from rc_sync.engine import SyncEngine
from warehouse import migrate, state
from warehouse.load import Loader
from warehouse.normalize import normalize_orders

KEYS = {
    "order_history": ("org_pk", "order_pk"),
    "box_history": ("org_pk", "order_pk", "box_pk"),
    "item_history": ("org_pk", "order_pk", "box_pk", "item_pk"),
}


@pytest.fixture
def small_sandbox() -> Any:
    """One org, 30 orders."""
    with SandboxServer(SandboxConfig(orgs=1, orders=30, seed=11)) as server:
        yield server


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _doc(server: SandboxServer, org: str, pk: str) -> dict[str, Any]:
    raw = server.store.order_bytes(org, pk, "expanded")
    assert raw is not None
    return json.loads(raw)


def _rows(target: Any, table: str) -> list[dict[str, Any]]:
    engine = warehouse_engine(target)
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.text(f"SELECT * FROM {table}"))]
    finally:
        engine.dispose()


def _as_dt(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return _ts(str(value))


class Model:
    """The expected history, computed from the captured documents (no product code)."""

    def __init__(self) -> None:
        self.docs: dict[str, dict[datetime, dict[str, Any]]] = {}
        self.deleted: dict[str, datetime] = {}
        self.back: dict[str, datetime] = {}

    def see(self, doc: dict[str, Any]) -> None:
        pk = doc["url"].rstrip("/").split("/")[-1]
        self.docs.setdefault(pk, {})[_ts(doc["nested_updated_at"])] = doc

    def expected(self, org: str) -> dict[str, set[tuple[Any, ...]]]:
        """Per table: (key..., valid_from, valid_to, deleted_at, a tracked value) tuples."""
        out: dict[str, set[tuple[Any, ...]]] = {t: set() for t in KEYS}
        for pk, versions in self.docs.items():
            events: list[tuple[datetime, dict[str, Any] | None]] = sorted(versions.items())
            if pk in self.deleted:
                events.append((self.deleted[pk], None))
            if pk in self.back:
                events.append((self.back[pk], events[-2][1]))
            events.sort(key=lambda e: e[0])
            order_rows: list[list[Any]] = []
            open_children: dict[tuple[str, ...], list[Any]] = {}
            child_rows: list[tuple[str, list[Any]]] = []
            for moment, doc in events:
                if doc is None:
                    order_rows[-1][1] = order_rows[-1][2] = moment
                    for row in open_children.values():
                        row[1] = row[2] = moment
                    open_children = {}
                    continue
                if order_rows and order_rows[-1][1] is None:
                    order_rows[-1][1] = moment
                order_rows.append([moment, None, None, doc["shipping"]["status"]])
                now: dict[tuple[str, ...], tuple[str, Any]] = {}
                for box in doc["boxes"]:
                    box_pk = box["url"].rstrip("/").split("/")[-1]
                    content = {k: v for k, v in box.items() if k != "items"}
                    now[("box", box_pk)] = (json.dumps(content, sort_keys=True), None)
                    for item in box["items"]:
                        item_pk = item["url"].rstrip("/").split("/")[-1]
                        now[("item", box_pk, item_pk)] = (
                            json.dumps(item, sort_keys=True),
                            item["quantity"],
                        )
                for key in list(open_children):
                    if key not in now or now[key][0] != open_children[key][3]:
                        open_children.pop(key)[1] = moment
                for key, (content, quantity) in now.items():
                    if key not in open_children:
                        row = [moment, None, None, content, quantity]
                        open_children[key] = row
                        child_rows.append(("/".join(key), row))
            for row in order_rows:
                out["order_history"].add((org, pk, row[0], row[1], row[2], row[3]))
            for key, row in child_rows:
                kind, *pks = key.split("/")
                table = "box_history" if kind == "box" else "item_history"
                value = None if kind == "box" else row[4]
                out[table].add((org, pk, *pks, row[0], row[1], row[2], value))
        return out


def _actual(target: Any) -> dict[str, set[tuple[Any, ...]]]:
    out: dict[str, set[tuple[Any, ...]]] = {}
    for table, keys in KEYS.items():
        rows = _rows(target, table)
        found = set()
        for r in rows:
            value = {"order_history": r.get("shipping_status"), "box_history": None}.get(
                table, r.get("quantity")
            )
            found.add(
                (
                    *(r[k] for k in keys),
                    _as_dt(r["valid_from"]),
                    _as_dt(r["valid_to"]),
                    _as_dt(r["deleted_at"]),
                    value,
                )
            )
        out[table] = found
    return out


def _assert_validity(target: Any, live: dict[str, bool]) -> None:
    """Per key: sorted, non-overlapping, contiguous except across deletions; one current row."""
    for table, keys in KEYS.items():
        groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
        for r in _rows(target, table):
            groups.setdefault(tuple(r[k] for k in keys), []).append(r)
        for key, rows in groups.items():
            rows.sort(key=lambda r: _as_dt(r["valid_from"]))
            for a, b in itertools.pairwise(rows):
                end = _as_dt(a["valid_to"])
                assert end is not None, f"{table} {key}: a closed-over version has no valid_to"
                assert end <= _as_dt(b["valid_from"]), f"{table} {key}: overlapping versions"
                if a["deleted_at"] is None and table == "order_history":
                    assert end == _as_dt(b["valid_from"]), f"{table} {key}: a gap without deletion"
            for r in rows:
                assert bool(r["is_current"]) == (r["valid_to"] is None)
                if r["valid_to"] is not None:
                    assert _as_dt(r["valid_from"]) < _as_dt(r["valid_to"])
            if table == "order_history":
                current = [r for r in rows if r["valid_to"] is None]
                assert len(current) == (1 if live.get(key[1], True) else 0), key


def _status_changes(target: Any) -> set[tuple[Any, ...]]:
    return {
        (r["order_pk"], r["field"], r["from_value"], r["to_value"], _as_dt(r["changed_at"]))
        for r in _rows(target, "order_status_changes")
    }


def _run_documented_queries(target: Any, o1: str, o4: str, model: Model) -> None:
    """The history sample SQL of docs/warehouse.md runs on this database and answers right."""
    from warehouse.dictionary import HISTORY_QUERIES
    from warehouse.types import to_sqlite_text

    engine = warehouse_engine(target)
    pick = 1 if target.dialect == "postgresql" else 2
    try:
        with engine.connect() as conn:
            (_, *shipped), (_, *as_of), (_, *versions) = HISTORY_QUERIES
            rows = conn.execute(sa.text(shipped[pick - 1])).mappings().all()
            o1_doc = model.docs[o1][sorted(model.docs[o1])[1]]
            assert [(r["carrier"], r["orders"]) for r in rows] == [
                (o1_doc["shipping"]["ship_via"], 1)
            ]
            then = sorted(model.docs[o1])[1]  # o1 was "shipped" from then until "delivered"
            now = datetime.now(UTC)

            def backlog(moment: datetime) -> dict[str, int]:
                if target.dialect == "postgresql":
                    sql = as_of[0].replace("TIMESTAMPTZ '2026-11-23 00:00:00+00'", ":as_of")
                    params: dict[str, Any] = {"as_of": moment}
                else:
                    sql = as_of[1].split("\n", 1)[1]
                    params = {"as_of": to_sqlite_text(moment)}
                return dict(conn.execute(sa.text(sql), params).all())

            before, after = backlog(then), backlog(now)
            assert sum(before.values()) == sum(after.values()) == 30
            assert before["shipped"] - after.get("shipped", 0) == 1
            assert after["delivered"] - before.get("delivered", 0) == 1
            primary = model.docs[o4][sorted(model.docs[o4])[0]]["primary_id"]
            found = conn.execute(sa.text(versions[0]), {"primary_id": primary}).mappings().all()
            quantities = {r["quantity"] for r in found}
            assert {7, 9} <= quantities and len({r["valid_from"] for r in found}) == 3
    finally:
        engine.dispose()


def test_history_in_order_and_shuffled(
    small_sandbox: SandboxServer, target: Any, tmp_path: Any
) -> None:
    """Syncs, a backfill and reconciles in order (A) and shuffled loads (B) give the same history."""
    server = small_sandbox
    store = server.store
    org = store.org_pks()[0]
    pks = store.order_pks(org)
    o1, o2, o3, o4 = pks[0], pks[1], pks[2], pks[3]
    for pk in (o3, o4):  # make sure they have what the stages change
        while len(_doc(server, org, pk)["boxes"]) < 2:
            store.add_box(org, pk, items=2)
    store.update_order(org, o1, shipping_status="pending")
    store.update_order(org, o2, billing_status="paid")
    settings = make_settings(server, target)
    model = Model()
    loads: list[tuple[str, dict[str, Any]]] = []  # (observed_by, doc) for warehouse B

    def capture(*order_pks: str) -> None:
        for pk in order_pks:
            doc = _doc(server, org, pk)
            model.see(doc)
            loads.append(("backfill", doc))

    with SyncEngine(settings, auto_migrate=True) as engine:
        engine.sync_incremental()
        capture(o1, o2, o3, o4)
        statuses = [_doc(server, org, o1)["shipping"]["status"]]

        # stage 1: status changes
        store.update_order(org, o1, shipping_status="shipped")
        store.update_order(org, o2, billing_status="refunded")
        statuses.append("shipped")
        engine.sync_incremental()
        capture(o1, o2)

        # stage 2: a box removed, an item quantity changed; read by a backfill window
        store.remove_box(org, o3)
        box = _doc(server, org, o4)["boxes"][0]
        box_pk = box["url"].rstrip("/").split("/")[-1]
        item_pk = box["items"][0]["url"].rstrip("/").split("/")[-1]
        store.set_item_quantity(org, o4, box_pk, item_pk, 7)
        engine.sync_window(datetime.now(UTC) - timedelta(hours=1))
        capture(o3, o4)

        # stage 3: o1 delivered, o2 deleted at the source (seen by reconcile)
        store.update_order(org, o1, shipping_status="delivered")
        statuses.append("delivered")
        store.delete_order(org, o2)
        engine.sync_incremental()
        capture(o1)
        before = datetime.now(UTC)
        engine.reconcile()
        deleted_at = state.deleted_orders(engine.db, org)[o2]
        assert before <= deleted_at <= datetime.now(UTC)
        model.deleted[o2] = deleted_at

        # stage 4: o2 reappears unchanged (proved by reconcile); o4's quantity again
        store.restore_order(org, o2)
        store.set_item_quantity(org, o4, box_pk, item_pk, 9)
        engine.sync_incremental()  # re-reads o2 unchanged: the deletion mark stays
        assert o2 in state.deleted_orders(engine.db, org)
        capture(o4)
        engine.reconcile()
        assert o2 not in state.deleted_orders(engine.db, org)
        # re-reading everything adds nothing (idempotent)
        engine.sync_full_refresh()

    a_rows = _rows(target, "order_history")
    back = [
        _as_dt(r["valid_from"])
        for r in a_rows
        if r["order_pk"] == o2 and _as_dt(r["valid_from"]) > deleted_at
    ]
    assert len(back) == 1
    model.back[o2] = back[0]
    reopened = next(r for r in a_rows if r["order_pk"] == o2 and _as_dt(r["valid_from"]) == back[0])
    assert reopened["observed_by"] == "reconcile" and reopened["is_current"]

    expected = model.expected(org)
    # o1: 3 versions, o2: 2 + the reopened one, o3: 2, o4: 3
    assert len(expected["order_history"]) == 11
    assert any(row[4] is not None for row in expected["box_history"])  # closed by the deletion
    actual = _actual(target)
    mutated = {o1, o2, o3, o4}
    for table in KEYS:
        got = {row for row in actual[table] if row[1] in mutated}
        assert got == expected[table], table
    _assert_validity(target, {})
    # the untouched orders have exactly one, current version
    others = [r for r in a_rows if r["order_pk"] not in mutated]
    assert len(others) == len(pks) - 4 and all(r["is_current"] for r in others)
    by = {r["observed_by"] for r in a_rows}
    assert {"sync", "reconcile"} <= by
    assert any(
        r["observed_by"] == "backfill" for r in _rows(target, "item_history") if r["order_pk"] == o4
    )

    changes = _status_changes(target)
    o1_versions = sorted(model.docs[o1])
    assert {c for c in changes if c[0] == o1} == {
        (o1, "shipping_status", statuses[0], "shipped", o1_versions[1]),
        (o1, "shipping_status", "shipped", "delivered", o1_versions[2]),
    }
    o2_versions = sorted(model.docs[o2])
    assert {c[1:] for c in changes if c[0] == o2} == {
        (
            "billing_status",
            model.docs[o2][o2_versions[0]]["billing"]["status"],
            "refunded",
            o2_versions[1],
        )
    }
    assert not [c for c in changes if c[0] in (o3, o4)]
    _run_documented_queries(target, o1, o4, model)

    # Warehouse B: the same versions, loaded in a shuffled order; the deletion and the
    # reappearance land between them (after o2's first version reached B).
    b_target = type(target)(
        url=f"sqlite:///{tmp_path / 'b.db'}" if target.dialect == "sqlite" else target.url,
        schema=target.schema + "_b" if target.dialect == "postgresql" else target.schema,
        dialect=target.dialect,
    )
    b_engine = warehouse_engine(b_target)
    try:
        if target.dialect == "postgresql":
            with b_engine.begin() as conn:
                conn.execute(sa.text(f'CREATE SCHEMA "{b_target.schema}"'))
        migrate.upgrade(b_engine)
        rng = random.Random(5)
        latest: dict[str, int] = {}
        for index, (_, doc) in enumerate(loads):
            latest[doc["url"]] = index
        rest = [load for i, load in enumerate(loads) if i not in latest.values()]
        rng.shuffle(rest)
        loader = Loader(b_engine)
        older = 0
        # every order's newest version first (a late sync), then the older ones shuffled
        first = [loads[i][1] for i in latest.values()]
        loader.load_batch(org, normalize_orders(org, first, datetime.now(UTC)), observed_by="sync")
        plan: list[tuple[str, Any]] = [("load", d) for _, d in rest]
        o2_last = max(i for i, (_, d) in enumerate(plan) if d["url"].rstrip("/").endswith(o2))
        delete_at = rng.randint(0, len(plan))
        plan.insert(delete_at, ("delete", None))
        plan.insert(max(delete_at, o2_last + 1) + 1, ("back", None))
        for kind, doc in plan:
            if kind == "load":
                batch = normalize_orders(org, [doc], datetime.now(UTC))
                older += loader.load_batch(org, batch, observed_by="backfill").orders_skipped_older
            elif kind == "delete":
                state.mark_deleted(b_engine, org, [o2], deleted_at)
            else:
                state.clear_deleted(b_engine, org, [o2], seen_at=model.back[o2])
        assert older == len(rest)  # every one of them arrived after a newer version
        # and everything once more: nothing changes
        before_b = _actual(b_target)
        for _, doc in loads:
            loader.load_batch(org, normalize_orders(org, [doc], datetime.now(UTC)))
        assert _actual(b_target) == before_b
        b_actual = _actual(b_target)
        for table in KEYS:
            assert b_actual[table] == expected[table], table
        _assert_validity(b_target, {})
        assert _status_changes(b_target) == {c for c in changes if c[0] in mutated}
    finally:
        if target.dialect == "postgresql":
            with b_engine.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{b_target.schema}" CASCADE'))
        b_engine.dispose()


def test_history_off_writes_no_history(small_sandbox: SandboxServer, target: Any) -> None:
    """RC_SYNC_HISTORY=off: the current state as always, the history tables stay empty."""
    settings = make_settings(small_sandbox, target, history="off")
    with SyncEngine(settings, auto_migrate=True) as engine:
        engine.sync_incremental()
        org = small_sandbox.store.org_pks()[0]
        small_sandbox.store.delete_order(org, small_sandbox.store.order_pks(org)[0])
        engine.reconcile()
    assert len(_rows(target, "orders")) == 30
    for table in KEYS:
        assert _rows(target, table) == []
