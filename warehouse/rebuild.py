"""Re-derive the typed tables from the stored documents (`rc-sync rebuild`): no API request.

Orders whose `normalize_version` differs from the installed normalizer are read in key order,
`raw` is normalized again, and orders, boxes, items, addresses, load issues and the typed
columns of their history rows are rewritten, one transaction per batch; the batch's rows get
the installed version in the same transaction. A killed rebuild therefore resumes where it
stopped: the rows it did not reach still carry the old version. `rebuild --all` first marks
every row of its scope stale (one statement), then proceeds the same way.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from warehouse import history as wh_history
from warehouse import models
from warehouse.bulk import BulkWriter
from warehouse.db import write_transaction
from warehouse.load import (
    CHILD_TABLES,
    RAW_JSON,
    TABLES,
    frame_columns,
    history_versions,
    mirror_issues,
)
from warehouse.normalize import NORMALIZE_VERSION, NormalizedBatch, normalize_orders
from warehouse.normalize_pool import NormalizePool, Pending

DEFAULT_BATCH = 1000
ORDERS = models.orders_table
# Orders columns a rebuild leaves alone: when the row was synced, the deletion mark, the
# document itself; content_hash and normalize_version are set separately for every row.
_ORDERS_KEEP = ("synced_at", "deleted_at", "raw", "content_hash", "normalize_version")


@dataclass
class RebuildStats:
    """What a rebuild changed: rows per table, load issues opened and closed."""

    orders_seen: int = 0
    changed: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(("orders", "boxes", "items", "addresses"), 0)
    )
    removed: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(("boxes", "items", "addresses"), 0)
    )
    history_retyped: int = 0
    issues_opened: int = 0
    issues_closed: int = 0

    def add(self, other: RebuildStats) -> None:
        """Accumulate another batch."""
        self.orders_seen += other.orders_seen
        for name, n in other.changed.items():
            self.changed[name] = self.changed.get(name, 0) + n
        for name, n in other.removed.items():
            self.removed[name] = self.removed.get(name, 0) + n
        self.history_retyped += other.history_retyped
        self.issues_opened += other.issues_opened
        self.issues_closed += other.issues_closed


def _stale(org_pk: str, since: datetime | None, until: datetime | None) -> Any:
    """WHERE clause: the org's orders in the window whose normalization is not the installed one."""
    clause = sa.and_(
        ORDERS.c.org_pk == org_pk,
        sa.or_(
            ORDERS.c.normalize_version.is_(None), ORDERS.c.normalize_version != NORMALIZE_VERSION
        ),
    )
    if since is not None:
        clause = sa.and_(clause, ORDERS.c.nested_updated_at >= since)
    if until is not None:
        clause = sa.and_(clause, ORDERS.c.nested_updated_at < until)
    return clause


def stale_counts(engine: Engine) -> dict[str, int]:
    """org_pk -> orders typed by another normalization version than the installed one."""
    query = (
        sa.select(ORDERS.c.org_pk, sa.func.count())
        .where(
            sa.or_(
                ORDERS.c.normalize_version.is_(None),
                ORDERS.c.normalize_version != NORMALIZE_VERSION,
            )
        )
        .group_by(ORDERS.c.org_pk)
    )
    with engine.connect() as conn:
        return {org: int(n) for org, n in conn.execute(query)}


def count_stale(
    engine: Engine, org_pk: str, since: datetime | None = None, until: datetime | None = None
) -> int:
    """How many of the org's orders in the window a rebuild would re-derive."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count()).select_from(ORDERS).where(_stale(org_pk, since, until))
            ).scalar_one()
        )


def mark_all_stale(
    engine: Engine, org_pk: str, since: datetime | None = None, until: datetime | None = None
) -> int:
    """Mark every order of the scope for re-derivation (`rebuild --all`); returns how many."""
    clause = ORDERS.c.org_pk == org_pk
    if since is not None:
        clause = sa.and_(clause, ORDERS.c.nested_updated_at >= since)
    if until is not None:
        clause = sa.and_(clause, ORDERS.c.nested_updated_at < until)
    with write_transaction(engine, org_pk) as conn:
        return int(
            conn.execute(sa.update(ORDERS).where(clause).values(normalize_version=None)).rowcount
        )


def rebuild_org(
    engine: Engine,
    org_pk: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    batch_size: int = DEFAULT_BATCH,
    history: bool = True,
    on_batch: Callable[[int], None] | None = None,
    pool: NormalizePool | None = None,
) -> RebuildStats:
    """Re-derive the org's stale orders in committed batches; returns what changed.

    Batches are read in key order (each read starts after the last key read, so it does not
    wait for the previous batch's commit) and normalized by `pool` (worker processes: the
    documents travel as their stored JSON text and are decoded there) up to the pool's depth
    ahead of the batch being written.
    """
    pool = pool or NormalizePool(0)
    total = RebuildStats()
    queue: deque[tuple[list[str], Pending]] = deque()
    after: str | None = None
    done = False
    while not done or queue:
        if not done:
            clause = _stale(org_pk, since, until)
            if after is not None:
                clause = sa.and_(clause, ORDERS.c.order_pk > after)
            with engine.connect() as conn:
                rows = conn.execute(
                    sa.select(ORDERS.c.order_pk, sa.cast(ORDERS.c.raw, sa.Text))
                    .where(clause)
                    .order_by(ORDERS.c.order_pk)
                    .limit(batch_size)
                ).all()
            if rows:
                after = rows[-1][0]
                now = datetime.now(UTC)
                texts = [raw for _, raw in rows if raw is not None]
                queue.append(([pk for pk, _ in rows], pool.submit_texts(org_pk, texts, now)))
            done = len(rows) < batch_size
        while queue and (done or len(queue) > pool.depth):
            pks, pending = queue.popleft()
            stats = rederive_batch(
                engine, org_pk, [(pk, None) for pk in pks], history=history, normalized=pending
            )
            total.add(stats)
            if on_batch is not None:
                on_batch(len(pks))
    return total


def rederive_batch(
    engine: Engine,
    org_pk: str,
    rows: Sequence[tuple[str, Any]],
    *,
    history: bool = True,
    normalized: Pending | None = None,
) -> RebuildStats:
    """Re-derive one batch of (order_pk, raw) in ONE transaction, marking them current.

    With `normalized` (the batch's documents already on their way through normalization),
    the `raw` of `rows` is not used.
    """
    if normalized is not None:
        batch = normalized.result()
        now = batch.synced_at
    else:
        now = datetime.now(UTC)
        docs = [raw for _, raw in rows if raw is not None]
        batch = normalize_orders(org_pk, docs, now)
    stats = RebuildStats(orders_seen=len(rows))
    with write_transaction(engine, org_pk) as conn:
        writer = BulkWriter(conn)
        pks = [pk for pk, _ in rows]
        stats.changed["orders"] = _write_orders(writer, batch)
        derived = set(batch.order_pks)
        for name in CHILD_TABLES:
            changed, removed = _write_children(writer, org_pk, name, batch, sorted(derived))
            stats.changed[name] = changed
            stats.removed[name] = removed
        opened, closed = mirror_issues(writer, org_pk, batch, sorted(derived), now)
        stats.issues_opened, stats.issues_closed = opened, closed
        _mark_current(conn, org_pk, pks, batch)
        if history:
            stats.history_retyped = _retype_history(conn, org_pk, pks, now, batch)
    return stats


def _write_orders(writer: BulkWriter, batch: NormalizedBatch) -> int:
    table = TABLES["orders"]
    n = len(batch.orders)
    if not n:
        return 0
    columns = frame_columns(batch.orders, None)
    columns.pop(RAW_JSON, None)
    columns.pop("raw", None)
    compare = [
        c.name
        for c in table.columns
        if c.name not in {k.name for k in table.primary_key.columns} and c.name not in _ORDERS_KEEP
    ]
    return writer.write(
        table, writer.column_tuples(table, columns, n), keep=_ORDERS_KEEP, when_differs=compare
    )


def _write_children(
    writer: BulkWriter, org_pk: str, name: str, batch: NormalizedBatch, order_pks: list[str]
) -> tuple[int, int]:
    """Replace one child table's rows of these orders; returns (rows changed, rows removed)."""
    table = TABLES[name]
    keys = [c.name for c in table.primary_key.columns]
    frame = batch.tables[name]
    columns = frame_columns(frame, None) if len(frame) else {}
    n = len(columns["order_pk"]) if columns else 0
    new_keys = set(zip(*(columns[k] for k in keys), strict=True)) if n else set()
    old_keys = writer.stored_keys(table, org_pk, order_pks, keys)
    stale = sorted(old_keys - new_keys)
    writer.delete_keys(table, keys, stale)
    compare = [c.name for c in table.columns if c.name not in keys and c.name != "synced_at"]
    changed = 0
    if n:
        changed = writer.write(
            table,
            writer.column_tuples(table, columns, n),
            keep=("synced_at",),
            when_differs=compare,
        )
    return changed, len(stale)


def _mark_current(
    conn: Connection, org_pk: str, pks: Sequence[str], batch: NormalizedBatch
) -> None:
    """content_hash and normalize_version for every order of the batch (also undecodable ones).

    The version is set by one statement per chunk; the hash only where it changed (after a
    normalization version bump: every row, one UPDATE each).
    """
    hashes = dict(
        zip(batch.orders["order_pk"].tolist(), batch.orders["content_hash"].tolist(), strict=True)
    )
    changed: list[dict[str, Any]] = []
    for start in range(0, len(pks), wh_history.IN_CHUNK):
        chunk = list(pks[start : start + wh_history.IN_CHUNK])
        where = sa.and_(ORDERS.c.org_pk == org_pk, ORDERS.c.order_pk.in_(chunk))
        for pk, digest in conn.execute(
            sa.select(ORDERS.c.order_pk, ORDERS.c.content_hash).where(where)
        ):
            if pk in hashes and hashes[pk] != digest:
                changed.append({"k_pk": pk, "v_hash": hashes[pk]})
        conn.execute(sa.update(ORDERS).where(where).values(normalize_version=NORMALIZE_VERSION))
    if changed:
        conn.execute(
            sa.update(ORDERS)
            .where(ORDERS.c.org_pk == org_pk, ORDERS.c.order_pk == sa.bindparam("k_pk"))
            .values(content_hash=sa.bindparam("v_hash")),
            changed,
        )


def _retype_history(
    conn: Connection,
    org_pk: str,
    order_pks: Sequence[str],
    now: datetime,
    batch: NormalizedBatch,
) -> int:
    """Re-type the history rows of these orders from each version's own document.

    A version whose document is the order's current one (the same content hash: most orders
    have one version) takes its typed values from the batch just normalized; only the older
    versions' documents are read and normalized again.
    """
    table = wh_history.ORDER
    current = history_versions(batch, range(len(batch.orders)), wh_history.REBUILD)
    reused: list[tuple[str, datetime, wh_history.Version]] = []
    older: dict[str, set[datetime]] = {}
    for start in range(0, len(order_pks), wh_history.IN_CHUNK):
        chunk = list(order_pks[start : start + wh_history.IN_CHUNK])
        query = sa.select(table.c.order_pk, table.c.valid_from, table.c.content_hash).where(
            table.c.org_pk == org_pk, table.c.order_pk.in_(chunk)
        )
        for pk, valid_from, digest in conn.execute(query):
            version = current.get(pk)
            if version is not None and version.content_hash == digest:
                reused.append((pk, valid_from, version))
            else:
                older.setdefault(pk, set()).add(valid_from)
    stored: dict[str, list[tuple[datetime, Any]]] = {}
    older_pks = sorted(older)
    for start in range(0, len(older_pks), wh_history.IN_CHUNK):
        chunk = older_pks[start : start + wh_history.IN_CHUNK]
        query = sa.select(table.c.order_pk, table.c.valid_from, table.c.raw).where(
            table.c.org_pk == org_pk, table.c.order_pk.in_(chunk)
        )
        for pk, valid_from, raw in conn.execute(query):
            if valid_from in older[pk]:
                stored.setdefault(pk, []).append((valid_from, raw))
    if not stored and not reused:
        return 0
    typed = [c for c in wh_history.ORDER_CONTENT if c not in ("raw", "content_hash")]
    order_stmt = (
        sa.update(table)
        .where(
            table.c.org_pk == org_pk,
            table.c.order_pk == sa.bindparam("k_order_pk"),
            table.c.valid_from == sa.bindparam("k_valid_from"),
        )
        .values({c: sa.bindparam(f"v_{c}") for c in typed})
    )
    current_rows = _stored_typed(conn, org_pk, order_pks, typed)
    retyped = 0
    rounds = max((len(v) for v in stored.values()), default=0)
    for index in range(-1, rounds):
        if index < 0:  # the versions that are the current documents: no second normalization
            triples = reused
        else:
            # normalize_orders keeps one document per order: one round per version index
            picked = {pk: v[index] for pk, v in stored.items() if index < len(v)}
            docs = [raw for _, raw in picked.values() if raw is not None]
            again = normalize_orders(org_pk, docs, now)
            triples = [
                (pk, picked[pk][0], version)
                for pk, version in history_versions(
                    again, range(len(again.orders)), wh_history.REBUILD
                ).items()
                if pk in picked
            ]
        order_params = []
        child_params: dict[str, list[dict[str, Any]]] = {n: [] for n in wh_history.CHILD_TABLES}
        for pk, valid_from, version in triples:
            if version.content is None:
                continue
            order_params.append(
                {
                    "k_order_pk": pk,
                    "k_valid_from": valid_from,
                    **{f"v_{c}": version.content.get(c) for c in typed},
                }
            )
            for (name, child_pks), payload in version.children.items():
                child_params[name].append(
                    {
                        "k_order_pk": pk,
                        "k_valid_from": valid_from,
                        **{
                            f"k_{k}": v
                            for k, v in zip(wh_history.CHILD_KEYS[name], child_pks, strict=True)
                        },
                        **{
                            f"v_{c}": payload.get(c)
                            for c in wh_history.CHILD_CONTENT[name]
                            if c != "content_hash"
                        },
                    }
                )
        # only the rows whose typed values differ from what is stored are written
        order_params = _differing(order_params, current_rows["order_history"], ())
        if order_params:
            conn.execute(order_stmt, order_params)
            retyped += len(order_params)
        for name, params in child_params.items():
            params = _differing(params, current_rows[name], wh_history.CHILD_KEYS[name])
            if not params:
                continue
            child = wh_history.CHILD_TABLES[name]
            content = [c for c in wh_history.CHILD_CONTENT[name] if c != "content_hash"]
            stmt = (
                sa.update(child)
                .where(
                    child.c.org_pk == org_pk,
                    child.c.order_pk == sa.bindparam("k_order_pk"),
                    child.c.valid_from == sa.bindparam("k_valid_from"),
                    *(child.c[k] == sa.bindparam(f"k_{k}") for k in wh_history.CHILD_KEYS[name]),
                )
                .values({c: sa.bindparam(f"v_{c}") for c in content})
            )
            conn.execute(stmt, params)
    return retyped


def _stored_typed(
    conn: Connection, org_pk: str, order_pks: Sequence[str], order_typed: list[str]
) -> dict[str, dict[tuple[Any, ...], dict[str, Any]]]:
    """The typed values stored in the history rows of these orders, by row key."""
    out: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {
        "order_history": {},
        **{name: {} for name in wh_history.CHILD_TABLES},
    }
    tables: dict[str, tuple[sa.Table, tuple[str, ...], list[str]]] = {
        "order_history": (wh_history.ORDER, (), order_typed)
    }
    for name, child in wh_history.CHILD_TABLES.items():
        content = [c for c in wh_history.CHILD_CONTENT[name] if c != "content_hash"]
        tables[name] = (child, wh_history.CHILD_KEYS[name], content)
    for start in range(0, len(order_pks), wh_history.IN_CHUNK):
        chunk = list(order_pks[start : start + wh_history.IN_CHUNK])
        for name, (table, keys, columns) in tables.items():
            query = sa.select(
                table.c.order_pk,
                table.c.valid_from,
                *(table.c[k] for k in keys),
                *(table.c[c] for c in columns),
            ).where(table.c.org_pk == org_pk, table.c.order_pk.in_(chunk))
            width = 2 + len(keys)
            for row in conn.execute(query):
                out[name][tuple(row[:width])] = dict(zip(columns, row[width:], strict=True))
    return out


def _differing(
    params: list[dict[str, Any]],
    stored: dict[tuple[Any, ...], dict[str, Any]],
    keys: tuple[str, ...],
) -> list[dict[str, Any]]:
    """The UPDATE parameter sets that would change a stored row (one matching no row does
    nothing: dropped too)."""
    out = []
    for param in params:
        key = (param["k_order_pk"], param["k_valid_from"], *(param[f"k_{name}"] for name in keys))
        row = stored.get(key)
        if row is not None and any(param[f"v_{c}"] != value for c, value in row.items()):
            out.append(param)
    return out
