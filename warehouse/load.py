"""Write normalized batches into the warehouse: one transaction per batch, idempotent.

Fast paths: SQLite gets one executemany per table; PostgreSQL gets COPY into a temporary
staging table and one INSERT ... SELECT ... ON CONFLICT merge per table.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from rc_common.tables import CHILD_TABLES, DATA_TABLES, TableCounts
from warehouse import history as wh_history
from warehouse import models
from warehouse.bulk import BulkWriter, column_converter, driver_rows, quote
from warehouse.db import chunks as _chunks
from warehouse.db import retry_on_disconnect, write_transaction
from warehouse.locks import verify_run_lock
from warehouse.normalize import (
    DOC_HASH,
    NORMALIZE_VERSION,
    RAW_JSON,
    UNKNOWN_ORDER,
    NormalizedBatch,
)
from warehouse.state import advance_watermark, record_day_done

log = logging.getLogger(__name__)

ISSUE_KEY = ("org_pk", "order_pk", "table_name", "row_key", "column_name")
TABLES: dict[str, sa.Table] = {
    "orders": models.orders_table,
    "boxes": models.boxes_table,
    "items": models.items_table,
    "addresses": models.addresses_table,
    "load_issues": models.load_issues_table,
}


def _table_counts() -> dict[str, TableCounts]:
    return {name: TableCounts() for name in DATA_TABLES}


@dataclass
class LoadStats:
    """What one (or several merged) load_batch calls did."""

    orders_new: int = 0
    orders_updated: int = 0
    orders_unchanged: int = 0
    orders_skipped_older: int = 0
    issues_new: int = 0
    issues_closed: int = 0
    docs_skipped: int = 0
    tables: dict[str, TableCounts] = field(default_factory=_table_counts)
    history: dict[str, int] = field(default_factory=dict)  # history rows written per table
    watermark: datetime | None = None
    # Orders this batch wrote (pk -> incoming nested_updated_at) and found already current;
    # the live sync uses them for the webhook hit/miss verdicts (not merged by `add`).
    written: dict[str, datetime | None] = field(default_factory=dict)
    current: list[str] = field(default_factory=list)

    def add(self, other: LoadStats) -> None:
        """Accumulate another batch's stats (the watermark keeps the latest value)."""
        self.orders_new += other.orders_new
        self.orders_updated += other.orders_updated
        self.orders_unchanged += other.orders_unchanged
        self.orders_skipped_older += other.orders_skipped_older
        self.issues_new += other.issues_new
        self.issues_closed += other.issues_closed
        self.docs_skipped += other.docs_skipped
        for name, counts in other.tables.items():
            self.tables.setdefault(name, TableCounts()).add(counts)
        for name, n in other.history.items():
            self.history[name] = self.history.get(name, 0) + n
        if other.watermark is not None:
            self.watermark = other.watermark


@dataclass(frozen=True)
class BackfillDay:
    """A day of a keyed backfill to record as done in the same transaction."""

    key: str
    day: date


def frame_columns(frame: Any, positions: list[int] | None) -> dict[str, list[Any]]:
    """Public columns of a normalized frame as lists (only the rows at `positions`, if given).

    The private RAW_JSON column is kept; other `_` columns are not.
    """
    out: dict[str, list[Any]] = {}
    for name in frame.columns:
        if name.startswith("_") and name != RAW_JSON:
            continue
        values = frame[name].tolist()
        out[name] = values if positions is None else [values[i] for i in positions]
    return out


# PostgreSQL: refresh the planner statistics of the data tables after this many orders, then
# each time the count written by this loader doubles. A first load grows the tables from
# nothing; until they are analyzed the planner believes they are empty and the per-batch key
# lookups (org_pk = ? AND order_pk IN (...)) degrade to scanning the whole org, which makes a
# first sync quadratic (seen at 100k orders with autovacuum off; autovacuum also lags a bulk load).
ANALYZE_FIRST_AT = 5_000
ANALYZED_TABLES = ("orders", *CHILD_TABLES, "order_history", "box_history", "item_history")


class Loader:
    """Loads NormalizedBatch objects into the warehouse (and, unless turned off, its history)."""

    def __init__(self, engine: Engine, *, history: bool = True) -> None:
        self.engine = engine
        self.history = history
        self._orders_written = 0
        self._analyze_at = ANALYZE_FIRST_AT

    def load_batch(
        self,
        org_pk: str,
        batch: NormalizedBatch,
        *,
        checkpoint: datetime | None = None,
        live: bool = False,
        backfill_days: Sequence[BackfillDay] = (),
        observed_by: str = wh_history.SYNC,
    ) -> LoadStats:
        """Apply one batch in ONE transaction (serialized per org); see docs/design.md.

        `backfill_days` are recorded done in the same transaction (a backfill's days whose
        orders are all loaded once this batch commits). `observed_by` says how the documents
        were obtained (sync, backfill, webhook); it is recorded on the history rows the batch
        opens.
        """
        if observed_by not in wh_history.OBSERVATION_KINDS:
            raise ValueError(f"observed_by must be one of {wh_history.OBSERVATION_KINDS}")
        if batch.org_pk != org_pk:
            raise ValueError(f"batch is for org {batch.org_pk!r}, not {org_pk!r}")
        if checkpoint is not None and checkpoint.tzinfo is None:
            raise ValueError("checkpoint must be timezone-aware")

        def transaction() -> LoadStats:
            with write_transaction(self.engine, org_pk) as conn:
                stats = self._load(conn, org_pk, batch, observed_by)
                if live and checkpoint is not None:
                    stats.watermark = advance_watermark(conn, org_pk, checkpoint, batch.synced_at)
                for day in backfill_days:
                    record_day_done(conn, org_pk, day.key, day.day, batch.synced_at)
                verify_run_lock(conn, org_pk)  # last, just before the commit
                return stats

        # The batch is one transaction: when its connection drops, nothing of it was
        # committed and it is simply run again on a new connection (a few times).
        stats = retry_on_disconnect(transaction)
        self._orders_written += stats.orders_new + stats.orders_updated
        if self._orders_written >= self._analyze_at and self.engine.dialect.name == "postgresql":
            self._analyze_at = 2 * self._orders_written
            # Only the key columns the loader looks rows up by: sampling the documents
            # (orders.raw, order_history.raw) made a full ANALYZE ~5x dearer.
            with self.engine.begin() as conn:
                conn.exec_driver_sql(
                    "ANALYZE "
                    + ", ".join(f"{quote(name)} (org_pk, order_pk)" for name in ANALYZED_TABLES)
                )
        return stats

    def _load(
        self, conn: Connection, org_pk: str, batch: NormalizedBatch, observed_by: str
    ) -> LoadStats:
        writer = BulkWriter(conn)
        stats = LoadStats(docs_skipped=batch.docs_skipped)
        orders = TABLES["orders"]
        synced_at = batch.synced_at
        stored: dict[str, tuple[datetime | None, str | None]] = {}
        deleted: dict[str, datetime] = {}
        for chunk in _chunks(batch.order_pks):
            query = sa.select(
                orders.c.order_pk,
                orders.c.nested_updated_at,
                orders.c.content_hash,
                orders.c.deleted_at,
            ).where(orders.c.org_pk == org_pk, orders.c.order_pk.in_(chunk))
            for pk, nested, digest, deleted_at in conn.execute(query):
                stored[pk] = (nested, digest)
                if deleted_at is not None:
                    deleted[pk] = deleted_at

        changed: list[str] = []
        unchanged: list[str] = []
        frame = batch.orders
        order_pks = frame["order_pk"].tolist()
        nested = frame["nested_updated_at"].tolist()
        hashes = frame["content_hash"].tolist()
        write_at: list[int] = []
        older_at: list[int] = []  # older than the stored version: history only
        for index, pk in enumerate(order_pks):
            previous = stored.get(pk)
            if previous is None:
                stats.orders_new += 1
            else:
                old_nested, old_hash = previous
                new_nested = nested[index]
                if old_nested is not None and new_nested is not None and new_nested < old_nested:
                    stats.orders_skipped_older += 1
                    older_at.append(index)
                    continue
                if old_hash is not None and old_hash == hashes[index]:
                    stats.orders_unchanged += 1
                    unchanged.append(pk)
                    continue
                stats.orders_updated += 1
            changed.append(pk)
            write_at.append(index)
            stats.written[pk] = nested[index]
        stats.current = unchanged

        # A deletion mark is cleared only by a version newer than the deletion (a listing that
        # proves the order back clears it through warehouse.state); re-reading the version
        # that was current when the order vanished leaves the mark alone.
        for chunk in _chunks(unchanged):
            conn.execute(
                sa.update(orders)
                .where(orders.c.org_pk == org_pk, orders.c.order_pk.in_(chunk))
                .values(synced_at=synced_at)
            )
        shared = BatchColumns(writer)
        if write_at:
            given: dict[str, list[Any]] = {
                "deleted_at": [
                    _deletion_kept(deleted.get(order_pks[i]), nested[i]) for i in write_at
                ],
                "normalize_version": [NORMALIZE_VERSION] * len(write_at),
            }
            verbatim: dict[str, list[Any]] = {}
            if RAW_JSON in frame.columns:  # the canonical JSON text the normalizer already made
                verbatim["raw"] = shared.values(frame, RAW_JSON, write_at)
            # none of the batch's orders stored: none of its rows can clash (a first load)
            writer.write(
                orders, shared.rows(orders, frame, write_at, given, verbatim), fresh=not stored
            )
        stats.tables["orders"] = TableCounts(
            inserted=stats.orders_new, updated=stats.orders_updated
        )

        if changed:
            self._replace_children(writer, shared, org_pk, batch, set(changed), stored, stats)
        stats.issues_new, stats.issues_closed = mirror_issues(
            writer, org_pk, batch, changed, synced_at
        )
        if self.history and (write_at or older_at):
            # Orders the warehouse never held have no history to merge with: their one
            # version is written straight from the batch's columns. The others (changed,
            # or older than the stored version) go through the timeline merge.
            first = [i for i in write_at if order_pks[i] not in stored]
            known = sorted([*(i for i in write_at if order_pks[i] in stored), *older_at])
            written = write_first_versions(writer, batch, first, observed_by, shared)
            counts = wh_history.HistoryCounts()
            if known:
                versions = history_versions(batch, known, observed_by)
                counts = wh_history.HistoryWriter(conn, writer, org_pk).record(versions)
            stats.history = {
                name: written.get(name, 0)
                + counts.inserted.get(name, 0)
                + counts.updated.get(name, 0)
                for name in wh_history.CHILD_TABLES.keys() | {"order_history"}
            }
        return stats

    def _replace_children(
        self,
        writer: BulkWriter,
        shared: BatchColumns,
        org_pk: str,
        batch: NormalizedBatch,
        changed: set[str],
        stored: dict[str, Any],
        stats: LoadStats,
    ) -> None:
        # Children of orders not stored before this batch cannot exist (foreign keys): only
        # the stored ones are looked up.
        lookup = sorted(pk for pk in changed if pk in stored)
        incoming: dict[str, list[tuple[Any, ...]]] = {}
        stale: dict[str, list[tuple[Any, ...]]] = {}
        for name in CHILD_TABLES:
            table = TABLES[name]
            keys = [c.name for c in table.primary_key.columns]
            frame = batch.tables[name]
            at: list[int] | None = None
            n = len(frame)
            if n:
                owners = shared.values(frame, "order_pk")
                if not all(pk in changed for pk in owners):
                    at = [i for i, pk in enumerate(owners) if pk in changed]
                    n = len(at)
            incoming[name] = shared.rows(table, frame, at) if n else []
            new_keys = (
                set(zip(*(shared.values(frame, k, at) for k in keys), strict=True)) if n else set()
            )
            old_keys = writer.stored_keys(table, org_pk, lookup, keys) if lookup else set()
            stale[name] = sorted(old_keys - new_keys)
            stats.tables[name] = TableCounts(
                inserted=len(new_keys - old_keys),
                updated=len(new_keys & old_keys),
                deleted=len(stale[name]),
            )
        # Children before parents when deleting, parents before children when writing.
        for name in ("items", "boxes", "addresses"):
            table = TABLES[name]
            writer.delete_keys(table, [c.name for c in table.primary_key.columns], stale[name])
        for name in ("addresses", "boxes", "items"):
            # children of orders not stored before cannot exist (foreign keys)
            writer.write(TABLES[name], incoming[name], fresh=not lookup)


def mirror_issues(
    writer: BulkWriter,
    org_pk: str,
    batch: NormalizedBatch,
    changed: list[str],
    synced_at: datetime,
) -> tuple[int, int]:
    """Make load_issues mirror the batch's problems of these orders; returns (opened, closed)."""
    table = TABLES["load_issues"]
    changed_set = set(changed)
    rows = [
        {**r, "seen_at": synced_at, "last_seen_at": synced_at}
        for r in batch.issue_records()
        if r["order_pk"] in changed_set or r["order_pk"] == UNKNOWN_ORDER
    ]
    old_keys = writer.stored_keys(table, org_pk, [*changed, UNKNOWN_ORDER], ISSUE_KEY)
    new_keys = {tuple(r[k] for k in ISSUE_KEY) for r in rows}
    stale = sorted(k for k in old_keys - new_keys if k[1] != UNKNOWN_ORDER)
    writer.delete_keys(table, ISSUE_KEY, stale)
    writer.upsert(table, rows, keep=("seen_at",))
    return len(new_keys - old_keys), len(stale)


def _deletion_kept(deleted_at: datetime | None, nested: datetime | None) -> datetime | None:
    """The deletion mark after writing a version: kept unless the version is newer than it."""
    if deleted_at is None or (nested is not None and nested > deleted_at):
        return None
    return deleted_at


_ORDER_VERSION_COLUMNS = tuple(
    c
    for c in wh_history.ORDER_CONTENT
    if c
    not in (
        "raw",
        "content_hash",
        "ship_to_country",
        "ship_to_region",
        "ship_to_country_code",
        "normalize_version",
    )
)


def history_versions(
    batch: NormalizedBatch, positions: Sequence[int], observed_by: str
) -> dict[str, wh_history.Version]:
    """The order versions at these rows of a batch's orders frame, with their children."""
    orders = batch.orders
    pks = orders["order_pk"].tolist()
    wanted = {pks[i] for i in positions}
    ship_to: dict[str, tuple[Any, Any, Any]] = {}
    addresses = batch.addresses
    if len(addresses):
        for pk, role, country, region, code in zip(
            addresses["order_pk"].tolist(),
            addresses["role"].tolist(),
            addresses["country"].tolist(),
            addresses["region"].tolist(),
            addresses["country_code"].tolist(),
            strict=True,
        ):
            if role == "ship_to" and pk in wanted:
                ship_to[pk] = (country, region, code)
    children: dict[str, dict[wh_history.ChildKey, dict[str, Any]]] = {pk: {} for pk in wanted}
    for name, frame_name in (("box_history", "boxes"), ("item_history", "items")):
        frame = batch.tables[frame_name]
        if not len(frame):
            continue
        owners = frame["order_pk"].tolist()
        keep = [i for i, pk in enumerate(owners) if pk in wanted]
        if not keep:
            continue
        key_cols = [frame[k].tolist() for k in wh_history.CHILD_KEYS[name]]
        wanted_cols = [c for c in wh_history.CHILD_CONTENT[name] if c != "content_hash"]
        values = {c: frame[c].tolist() for c in wanted_cols}
        hashes = frame[DOC_HASH].tolist()
        for i in keep:
            key = (name, tuple(col[i] for col in key_cols))
            payload = {c: values[c][i] for c in wanted_cols}
            payload["content_hash"] = hashes[i]
            children[owners[i]][key] = payload
    columns = {c: orders[c].tolist() for c in _ORDER_VERSION_COLUMNS}
    raw_json = orders[RAW_JSON].tolist()
    doc_hashes = orders[DOC_HASH].tolist()
    observed_at = batch.synced_at
    versions: dict[str, wh_history.Version] = {}
    for i in positions:
        pk = pks[i]
        valid_from = columns["nested_updated_at"][i]
        if valid_from is None:
            continue  # no version time: nothing to place on a timeline (a load issue says why)
        country, region, code = ship_to.get(pk, (None, None, None))
        content = {c: columns[c][i] for c in _ORDER_VERSION_COLUMNS}
        content.update(
            raw=raw_json[i],
            content_hash=doc_hashes[i],
            ship_to_country=country,
            ship_to_region=region,
            ship_to_country_code=code,
            normalize_version=NORMALIZE_VERSION,
        )
        versions[pk] = wh_history.Version(
            valid_from=valid_from,
            content_hash=doc_hashes[i],
            observed_at=observed_at,
            observed_by=observed_by,
            content=content,
            children=children.get(pk, {}),
        )
    return versions


def write_first_versions(
    writer: BulkWriter,
    batch: NormalizedBatch,
    positions: Sequence[int],
    observed_by: str,
    shared: BatchColumns | None = None,
) -> dict[str, int]:
    """History rows of orders at these rows of the batch that the warehouse never held.

    Each such order has exactly one version: open and current, valid from its
    nested_updated_at, with all its boxes and items open from the same moment; the rows are
    what HistoryWriter.record writes for it (same values, same order: by order pk, children
    in batch order), built column by column from the batch's frames, with no lookup, no
    timeline and no row dicts. Orders without a version time get no row (as in record).
    Returns the rows written per history table.
    """
    shared = shared or BatchColumns(writer)
    orders = batch.orders
    pks = shared.values(orders, "order_pk")
    nested = shared.values(orders, "nested_updated_at")
    rows = sorted((i for i in positions if nested[i] is not None), key=pks.__getitem__)
    written: dict[str, int] = {}
    if not rows:
        return written
    n = len(rows)
    org_pk = batch.org_pk
    observed_at = batch.synced_at

    def validity(starts: list[Any], count: int) -> dict[str, list[Any]]:
        return {
            "valid_from": starts,
            "valid_to": [None] * count,
            "is_current": [True] * count,
            "observed_at": [observed_at] * count,
            "observed_by": [observed_by] * count,
            "deleted_at": [None] * count,
        }

    ship_to: dict[str, tuple[Any, Any, Any]] = {}
    addresses = batch.addresses
    if len(addresses):
        first = {pks[i] for i in rows}
        for pk, role, country, region, code in zip(
            shared.values(addresses, "order_pk"),
            shared.values(addresses, "role"),
            shared.values(addresses, "country"),
            shared.values(addresses, "region"),
            shared.values(addresses, "country_code"),
            strict=True,
        ):
            if role == "ship_to" and pk in first:
                ship_to[pk] = (country, region, code)
    order_pks = [pks[i] for i in rows]
    starts = [nested[i] for i in rows]
    nowhere = (None, None, None)
    places = [ship_to.get(pk, nowhere) for pk in order_pks]
    given = {
        "org_pk": [org_pk] * n,
        "order_pk": order_pks,
        "ship_to_country": [p[0] for p in places],
        "ship_to_region": [p[1] for p in places],
        "ship_to_country_code": [p[2] for p in places],
        "content_hash": shared.values(orders, DOC_HASH, rows),
        "normalize_version": [NORMALIZE_VERSION] * n,
        **validity(starts, n),
    }
    raw = shared.values(orders, RAW_JSON, rows)
    verbatim: dict[str, list[Any]] = {}
    if all(isinstance(v, str | None) for v in raw):
        verbatim["raw"] = raw  # canonical JSON text from the normalizer
    else:
        given["raw"] = raw
    table = wh_history.ORDER
    writer.write(
        table,
        shared.rows(table, orders, rows, given, verbatim, _ORDER_VERSION_COLUMNS),
        fresh=True,  # orders never held have no history (a stray row: upserted after all)
    )
    written["order_history"] = n

    rank = {pk: r for r, pk in enumerate(order_pks)}
    start = dict(zip(order_pks, starts, strict=True))
    for name, frame_name in (("box_history", "boxes"), ("item_history", "items")):
        frame = batch.tables[frame_name]
        if not len(frame):
            continue
        owners = shared.values(frame, "order_pk")
        keep = [j for j, pk in enumerate(owners) if pk in rank]
        if not keep:
            continue
        keep.sort(key=lambda j: rank[owners[j]])  # stable: batch order within an order
        m = len(keep)
        mine = [owners[j] for j in keep]
        given = {
            "org_pk": [org_pk] * m,
            "order_pk": mine,
            "content_hash": shared.values(frame, DOC_HASH, keep),
            **validity([start[pk] for pk in mine], m),
        }
        from_frame = [
            c
            for c in (*wh_history.CHILD_KEYS[name], *wh_history.CHILD_CONTENT[name])
            if c != "content_hash"
        ]
        table = wh_history.CHILD_TABLES[name]
        writer.write(table, shared.rows(table, frame, keep, given, {}, from_frame), fresh=True)
        written[name] = m
    return written


class BatchColumns:
    """A batch's frame columns as lists and in driver form, each made once per batch.

    The current-state rows and the first history versions read the same frame columns (the
    history tables' columns have the same types), so each is listed and converted once.
    """

    def __init__(self, writer: BulkWriter) -> None:
        self.dialect = writer.dialect
        self.copy = writer.use_copy
        self._lists: dict[tuple[int, str], list[Any]] = {}
        self._driver: dict[tuple[int, str, Any], list[Any]] = {}

    def values(self, frame: Any, name: str, at: Sequence[int] | None = None) -> list[Any]:
        """The frame column as a list (the rows at `at` only, if given)."""
        key = (id(frame), name)
        values = self._lists.get(key)
        if values is None:
            values = self._lists[key] = frame[name].tolist()
        return values if at is None else [values[i] for i in at]

    def driver(
        self, frame: Any, name: str, target: sa.Column[Any], at: Sequence[int] | None
    ) -> list[Any]:
        """The frame column in the driver form of `target` (at `at` only, if given).

        The whole column is converted once and kept when most of it is wanted; a few rows
        of a large frame are converted alone.
        """
        convert = column_converter(target, self.dialect)
        if at is not None and 2 * len(at) < len(frame):
            return convert(self.values(frame, name, at))
        key = (id(frame), name, convert)
        values = self._driver.get(key)
        if values is None:
            values = self._driver[key] = convert(self.values(frame, name))
        return values if at is None else [values[i] for i in at]

    def rows(
        self,
        table: sa.Table,
        frame: Any,
        at: Sequence[int] | None,
        given: dict[str, list[Any]] | None = None,
        verbatim: dict[str, list[Any]] | None = None,
        from_frame: Sequence[str] | None = None,
    ) -> list[tuple[Any, ...]]:
        """Driver-ready rows of `table` (in its column order) for the frame's rows at `at`.

        Each column comes from `verbatim` (already in driver form), else `given` (converted
        here), else the frame's column of the same name (only those in `from_frame`, when
        given; every column must then be provided), else NULL.
        """
        given = given or {}
        verbatim = verbatim or {}
        n = len(frame) if at is None else len(at)
        out: list[list[Any]] = []
        for column in table.columns:
            name = column.name
            if name in verbatim:
                out.append(verbatim[name])
            elif name in given:
                out.append(column_converter(column, self.dialect)(given[name]))
            elif (from_frame is None or name in from_frame) and name in frame.columns:
                out.append(self.driver(frame, name, column, at))
            elif from_frame is not None:
                raise AssertionError(f"{table.name}: no values for {name}")
            else:
                out.append([None] * n)
        return driver_rows(out, self.copy)
