"""Order, box and item history: every version rc-sync observed, with validity intervals.

An order's timeline is a sorted list of events: versions (an order document, valid from its
`nested_updated_at`) and deletions (the moment rc-sync saw the order gone). Each version of
the order is valid until the next event; a box or item version is valid from the order
version where it appeared (or changed) until the order version where it changed or
disappeared, or until a deletion. Writing a version, a deletion or a reappearance recomputes
the timelines of the orders it touches from what is stored plus the new event, and writes
only the rows that differ; so re-reading a version changes nothing, and a version that
arrives late (a backfill after a newer sync) slots in between its neighbours.

Runs on the caller's connection, inside the transaction that writes the current state.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from warehouse import models

IN_CHUNK = 500
SYNC, BACKFILL, WEBHOOK, RECONCILE, REBUILD = "sync", "backfill", "webhook", "reconcile", "rebuild"
OBSERVATION_KINDS = (SYNC, BACKFILL, WEBHOOK, RECONCILE)

ORDER = models.order_history_table
BOX = models.box_history_table
ITEM = models.item_history_table
CHILD_TABLES = {"box_history": BOX, "item_history": ITEM}
VALIDITY = ("valid_to", "is_current", "deleted_at")
_META = ("valid_from", "valid_to", "is_current", "observed_at", "observed_by", "deleted_at")


def _content_columns(table: sa.Table) -> tuple[str, ...]:
    """Columns of a history table that a version's content fills (not keys, not validity)."""
    keys = {c.name for c in table.primary_key.columns}
    return tuple(c.name for c in table.columns if c.name not in keys and c.name not in _META)


ORDER_CONTENT = _content_columns(ORDER)  # includes raw, content_hash, normalize_version
BOX_CONTENT = _content_columns(BOX)
ITEM_CONTENT = _content_columns(ITEM)
CHILD_KEYS = {"box_history": ("box_pk",), "item_history": ("box_pk", "item_pk")}
CHILD_CONTENT = {"box_history": BOX_CONTENT, "item_history": ITEM_CONTENT}

ChildKey = tuple[str, tuple[str, ...]]  # (table, child pks within the order)


@dataclass
class Version:
    """One version of one order: its content and its children's contents (by child key)."""

    valid_from: datetime
    content_hash: str
    observed_at: datetime
    observed_by: str
    content: dict[str, Any] | None  # ORDER_CONTENT values; None = stored row, unchanged
    children: dict[ChildKey, dict[str, Any]] = field(default_factory=dict)


@dataclass
class HistoryCounts:
    """Rows written per history table."""

    inserted: dict[str, int] = field(default_factory=dict)
    updated: dict[str, int] = field(default_factory=dict)
    deleted: dict[str, int] = field(default_factory=dict)

    def bump(self, kind: str, table: str, n: int) -> None:
        """Add n to one counter."""
        if n:
            target = getattr(self, kind)
            target[table] = target.get(table, 0) + n


@dataclass
class _Stored:
    """What the warehouse holds for one order's history."""

    orders: dict[datetime, dict[str, Any]] = field(default_factory=dict)  # valid_from -> row
    children: dict[tuple[ChildKey, datetime], dict[str, Any]] = field(default_factory=dict)


def _chunks(values: Sequence[Any], size: int = IN_CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _load(conn: Connection, org_pk: str, order_pks: Sequence[str]) -> dict[str, _Stored]:
    """Stored history rows of these orders (order rows without their raw document)."""
    stored: dict[str, _Stored] = {}
    order_cols = [c for c in ORDER.columns if c.name != "raw"]
    for chunk in _chunks(sorted(set(order_pks))):
        query = sa.select(*order_cols).where(ORDER.c.org_pk == org_pk, ORDER.c.order_pk.in_(chunk))
        for row in conn.execute(query):
            data = dict(row._mapping)
            stored.setdefault(data["order_pk"], _Stored()).orders[data["valid_from"]] = data
        for name, table in CHILD_TABLES.items():
            query = sa.select(table).where(table.c.org_pk == org_pk, table.c.order_pk.in_(chunk))
            for row in conn.execute(query):
                data = dict(row._mapping)
                key = (name, tuple(data[k] for k in CHILD_KEYS[name]))
                stored.setdefault(data["order_pk"], _Stored()).children[
                    (key, data["valid_from"])
                ] = data
    return stored


def _live_state(conn: Connection, org_pk: str, order_pks: Sequence[str]) -> dict[str, Any]:
    """order_pk -> orders.deleted_at (None = live) for the orders that have a current row."""
    orders = models.orders_table
    found: dict[str, Any] = {}
    for chunk in _chunks(sorted(set(order_pks))):
        query = sa.select(orders.c.order_pk, orders.c.deleted_at).where(
            orders.c.org_pk == org_pk, orders.c.order_pk.in_(chunk)
        )
        found.update({pk: at for pk, at in conn.execute(query)})
    return found


def _stored_versions(stored: _Stored) -> dict[datetime, Version]:
    """The stored versions of an order, each with the child versions valid at its start."""
    versions: dict[datetime, Version] = {}
    for valid_from, row in stored.orders.items():
        children: dict[ChildKey, dict[str, Any]] = {}
        for (key, start), child in stored.children.items():
            end = child["valid_to"]
            if start <= valid_from and (end is None or end > valid_from):
                children[key] = child
        versions[valid_from] = Version(
            valid_from=valid_from,
            content_hash=row["content_hash"],
            observed_at=row["observed_at"],
            observed_by=row["observed_by"],
            content=None,
            children=children,
        )
    return versions


def _timeline(
    versions: dict[datetime, Version], deletions: set[datetime], deleted_now: Any, live: bool
) -> list[tuple[datetime, Version | None]]:
    """Events in time order (None = a deletion), made consistent with the current state."""
    events: list[tuple[datetime, Version | None]] = sorted(
        [*((t, v) for t, v in versions.items()), *((t, None) for t in deletions)],
        key=lambda e: (e[0], e[1] is None),
    )
    if live:
        # The current-state row says the order exists: a trailing deletion was overruled.
        while events and events[-1][1] is None:
            events.pop()
    elif (
        deleted_now is not None
        and events
        and events[-1][1] is not None
        and deleted_now > events[-1][0]
    ):
        events.append((deleted_now, None))
    return events


def _desired(
    org_pk: str, order_pk: str, events: list[tuple[datetime, Version | None]]
) -> tuple[dict[datetime, dict[str, Any]], dict[tuple[ChildKey, datetime], dict[str, Any]]]:
    """The history rows the timeline implies: order rows and child rows, keyed like _Stored."""
    orders: dict[datetime, dict[str, Any]] = {}
    children: dict[tuple[ChildKey, datetime], dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    open_children: dict[ChildKey, dict[str, Any]] = {}
    for moment, version in events:
        if version is None:  # a deletion closes the order version and every open child
            if current is not None and current["valid_to"] is None:
                current["valid_to"] = current["deleted_at"] = moment
                current = None
            for row in open_children.values():
                row["valid_to"] = row["deleted_at"] = moment
            open_children = {}
            continue
        if current is not None and current["valid_to"] is None:
            current["valid_to"] = moment
        current = {
            "valid_from": moment,
            "valid_to": None,
            "deleted_at": None,
            "content_hash": version.content_hash,
            "observed_at": version.observed_at,
            "observed_by": version.observed_by,
            "content": version.content,
        }
        orders[moment] = current
        for key in list(open_children):
            new = version.children.get(key)
            if new is None or new["content_hash"] != open_children[key]["content_hash"]:
                open_children.pop(key)["valid_to"] = moment
        for key, payload in version.children.items():
            if key in open_children:
                continue
            row = {
                **{c: payload.get(c) for c in CHILD_CONTENT[key[0]]},
                "valid_from": moment,
                "valid_to": None,
                "deleted_at": None,
                "observed_at": version.observed_at,
                "observed_by": version.observed_by,
            }
            children[(key, moment)] = row
            open_children[key] = row
    for row in orders.values():
        row["is_current"] = row["valid_to"] is None
    for row in children.values():
        row["is_current"] = row["valid_to"] is None
    del org_pk, order_pk
    return orders, children


class _Plan:
    """Rows to insert (full), rows whose validity changes, rows to delete; per table."""

    def __init__(self) -> None:
        self.full: dict[str, list[dict[str, Any]]] = {
            "order_history": [],
            **{n: [] for n in CHILD_TABLES},
        }
        self.validity: dict[str, list[dict[str, Any]]] = {k: [] for k in self.full}
        self.delete: dict[str, list[tuple[Any, ...]]] = {k: [] for k in self.full}


def _same_validity(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(a[c] == b[c] for c in VALIDITY) and bool(a["is_current"]) == bool(b["is_current"])


def _plan_order(
    plan: _Plan,
    org_pk: str,
    order_pk: str,
    stored: _Stored,
    orders: dict[datetime, dict[str, Any]],
    children: dict[tuple[ChildKey, datetime], dict[str, Any]],
) -> None:
    keys = {"org_pk": org_pk, "order_pk": order_pk}
    for valid_from, row in orders.items():
        old = stored.orders.get(valid_from)
        if old is not None and row["content"] is None:
            if not _same_validity(row, old):
                plan.validity["order_history"].append({**keys, "valid_from": valid_from, **row})
            continue
        if old is not None and old["content_hash"] == row["content_hash"]:
            # The same version read again: keep what is stored, fix the validity if needed.
            if not _same_validity(row, old):
                plan.validity["order_history"].append({**keys, "valid_from": valid_from, **row})
            continue
        content = row["content"] or {}
        full = {
            **keys,
            **{c: content.get(c) for c in ORDER_CONTENT},
            **{c: row[c] for c in _META},
            "content_hash": row["content_hash"],
        }
        plan.full["order_history"].append(full)
    for (key, valid_from), row in children.items():
        name, pks = key
        full = {**keys, **dict(zip(CHILD_KEYS[name], pks, strict=True)), **row}
        old = stored.children.get((key, valid_from))
        if old is not None and old["content_hash"] == row["content_hash"]:
            if not _same_validity(row, old):
                plan.validity[name].append(full)
            continue
        plan.full[name].append(full)
    for key, valid_from in stored.children.keys() - children.keys():
        name, pks = key
        plan.delete[name].append((org_pk, order_pk, *pks, valid_from))


class HistoryWriter:
    """Writes history rows on one connection (inside the caller's transaction)."""

    def __init__(self, conn: Connection, writer: Any, org_pk: str) -> None:
        self.conn = conn
        self.writer = writer  # warehouse.load.BulkWriter
        self.org_pk = org_pk
        self.counts = HistoryCounts()

    def record(
        self,
        versions: dict[str, Version],
        *,
        new_orders: Iterable[str] = (),
        deletions: dict[str, datetime] | None = None,
        reappearances: dict[str, tuple[datetime, str]] | None = None,
    ) -> HistoryCounts:
        """Merge new versions, deletions and reappearances into the touched orders' history.

        `new_orders` are orders the warehouse has never held (no history to load).
        `reappearances`: order_pk -> (when seen again, observed_by) for orders that a listing
        proved back without a newer version; they reopen with their last version's content.
        """
        deletions = deletions or {}
        reappearances = reappearances or {}
        new = set(new_orders)
        touched = sorted(set(versions) | set(deletions) | set(reappearances))
        to_load = [pk for pk in touched if pk not in new]
        stored = _load(self.conn, self.org_pk, to_load) if to_load else {}
        live = _live_state(self.conn, self.org_pk, touched)
        plan = _Plan()
        for order_pk in touched:
            mine = stored.get(order_pk, _Stored())
            timeline = _stored_versions(mine)
            incoming = versions.get(order_pk)
            if incoming is not None:
                old = timeline.get(incoming.valid_from)
                if old is None or old.content_hash != incoming.content_hash:
                    timeline[incoming.valid_from] = incoming
            gone = {row["deleted_at"] for row in mine.orders.values() if row["deleted_at"]}
            gone |= {row["deleted_at"] for row in mine.children.values() if row["deleted_at"]}
            if order_pk in deletions:
                gone.add(deletions[order_pk])
            if order_pk in reappearances and timeline:
                at, observed_by = reappearances[order_pk]
                last_deleted = max(gone) if gone else None
                last = timeline[max(timeline)]
                if (
                    last_deleted is not None
                    and last_deleted >= last.valid_from
                    and at > last_deleted
                ):
                    timeline[at] = Version(
                        valid_from=at,
                        content_hash=last.content_hash,
                        observed_at=at,
                        observed_by=observed_by,
                        content=self._content_of(order_pk, last),
                        children=dict(last.children),
                    )
            deleted_now = live.get(order_pk)
            is_live = order_pk in live and deleted_now is None
            events = _timeline(timeline, gone, deleted_now, is_live)
            orders, children = _desired(self.org_pk, order_pk, events)
            _plan_order(plan, self.org_pk, order_pk, mine, orders, children)
        self._apply(plan)
        return self.counts

    def _content_of(self, order_pk: str, version: Version) -> dict[str, Any]:
        """The full stored content of one version (for a reappearance that copies it)."""
        if version.content is not None:
            return version.content
        row = self.conn.execute(
            sa.select(*(ORDER.c[c] for c in ORDER_CONTENT)).where(
                ORDER.c.org_pk == self.org_pk,
                ORDER.c.order_pk == order_pk,
                ORDER.c.valid_from == version.valid_from,
            )
        ).one()
        return dict(row._mapping)

    def _apply(self, plan: _Plan) -> None:
        tables = {"order_history": ORDER, **CHILD_TABLES}
        for name in ("item_history", "box_history"):
            table = tables[name]
            keys = [c.name for c in table.primary_key.columns]
            self.writer.delete_keys(table, keys, plan.delete[name])
            self.counts.bump("deleted", name, len(plan.delete[name]))
        for name, table in tables.items():
            rows = plan.full[name]
            if rows:
                columns = {c.name: [r.get(c.name) for r in rows] for c in table.columns}
                verbatim: tuple[str, ...] = ()
                if name == "order_history" and all(
                    isinstance(v, str | None) for v in columns["raw"]
                ):
                    verbatim = ("raw",)  # canonical JSON text from the normalizer
                self.writer.write(
                    table, self.writer.column_tuples(table, columns, len(rows), verbatim)
                )
                self.counts.bump("inserted", name, len(rows))
            updates = plan.validity[name]
            if updates:
                self._update_validity(table, updates)
                self.counts.bump("updated", name, len(updates))

    def _update_validity(self, table: sa.Table, rows: list[dict[str, Any]]) -> None:
        keys = [c.name for c in table.primary_key.columns]
        stmt = (
            sa.update(table)
            .where(*(table.c[k] == sa.bindparam(f"k_{k}") for k in keys))
            .values({c: sa.bindparam(f"v_{c}") for c in VALIDITY})
        )
        params = [
            {**{f"k_{k}": r[k] for k in keys}, **{f"v_{c}": r[c] for c in VALIDITY}} for r in rows
        ]
        self.conn.execute(stmt, params)
