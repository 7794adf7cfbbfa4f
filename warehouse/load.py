"""Write normalized batches into the warehouse: one transaction per batch, idempotent.

Fast paths: SQLite gets one executemany per table; PostgreSQL gets COPY into a temporary
staging table and one INSERT ... SELECT ... ON CONFLICT merge per table.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from rc_common.tables import CHILD_TABLES, DATA_TABLES, TableCounts
from warehouse import models
from warehouse.db import chunks as _chunks
from warehouse.db import write_transaction
from warehouse.normalize import RAW_JSON, UNKNOWN_ORDER, NormalizedBatch
from warehouse.state import advance_watermark, record_day_done
from warehouse.types import DecimalNumber, UTCDateTime, to_sqlite_text

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
    docs_skipped: int = 0
    tables: dict[str, TableCounts] = field(default_factory=_table_counts)
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
        self.docs_skipped += other.docs_skipped
        for name, counts in other.tables.items():
            self.tables.setdefault(name, TableCounts()).add(counts)
        if other.watermark is not None:
            self.watermark = other.watermark


@dataclass(frozen=True)
class BackfillDay:
    """A day of a keyed backfill to record as done in the same transaction."""

    key: str
    day: date


def _converter(column: sa.Column[Any], dialect: str) -> Callable[[Any], Any]:
    """Python value -> what the driver (executemany / COPY) takes for this column."""
    kind = column.type
    if isinstance(kind, UTCDateTime):
        if dialect == "sqlite":
            return lambda v: None if v is None else to_sqlite_text(v)
        return lambda v: v
    if isinstance(kind, DecimalNumber):
        return lambda v: None if v is None else str(v)
    if isinstance(kind, sa.JSON) or column.name in ("raw", "tags", "custom_fields", "capabilities"):
        return lambda v: None if v is None else json.dumps(v, ensure_ascii=False, allow_nan=False)
    if isinstance(kind, sa.Boolean) and dialect == "sqlite":
        return lambda v: None if v is None else int(bool(v))
    if isinstance(kind, sa.Date):
        return lambda v: None if v is None else v.isoformat()
    return lambda v: v


def _sqlite_datetimes(values: list[Any]) -> list[Any]:
    """to_sqlite_text over a column; aware UTC datetimes (the normal case) take a short cut."""
    out: list[Any] = []
    for value in values:
        if value is None:
            out.append(None)
        elif type(value) is datetime and value.tzinfo is UTC:
            out.append(value.isoformat(timespec="microseconds"))  # == to_sqlite_text(value)
        else:
            out.append(to_sqlite_text(value))
    return out


def _json_texts(values: list[Any]) -> list[Any]:
    """json.dumps over a column; empty lists and objects (the common case) without the encoder."""
    dumps = json.dumps
    out: list[Any] = []
    for value in values:
        if value is None:
            out.append(None)
        elif not value and type(value) in (list, dict):
            out.append("[]" if type(value) is list else "{}")
        else:
            out.append(dumps(value, ensure_ascii=False, allow_nan=False))
    return out


def _column_converter(column: sa.Column[Any], dialect: str) -> Callable[[list[Any]], list[Any]]:
    """Like _converter, for a whole column at once (same results)."""
    kind = column.type
    if isinstance(kind, UTCDateTime) and dialect == "sqlite":
        return _sqlite_datetimes
    if isinstance(kind, sa.JSON) or column.name in ("raw", "tags", "custom_fields", "capabilities"):
        return _json_texts
    one = _converter(column, dialect)
    if isinstance(kind, UTCDateTime) or not (
        isinstance(kind, DecimalNumber | sa.Date)
        or (isinstance(kind, sa.Boolean) and dialect == "sqlite")
    ):
        return lambda values: values  # passed through unchanged
    return lambda values: [one(v) for v in values]


def _quote(name: str) -> str:
    return f'"{name}"'


def _frame_columns(frame: Any, positions: list[int] | None) -> dict[str, list[Any]]:
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


class _Writer:
    """Dialect-aware bulk upsert/delete on one connection."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.dialect = conn.dialect.name
        self.use_copy = self.dialect == "postgresql" and conn.dialect.driver == "psycopg"
        self.placeholder = "?" if self.dialect == "sqlite" else "%s"

    def _tuples(
        self, table: sa.Table, rows: Iterable[dict[str, Any]], overrides: dict[str, str]
    ) -> list[tuple[Any, ...]]:
        converters = []
        for column in table.columns:
            source = overrides.get(column.name)
            if source is not None:
                converters.append((source, lambda v: v))
            else:
                converters.append((column.name, _converter(column, self.dialect)))
        return [tuple(convert(row.get(name)) for name, convert in converters) for row in rows]

    def column_tuples(
        self,
        table: sa.Table,
        columns: dict[str, list[Any]],
        n: int,
        verbatim: Sequence[str] = (),
    ) -> list[tuple[Any, ...]]:
        """Driver-ready rows from column lists (missing columns are NULL), converted per column.

        Columns named in `verbatim` are already in driver form and pass unchanged.
        """
        converted = []
        for column in table.columns:
            values = columns.get(column.name)
            if values is None:
                converted.append([None] * n)
            elif column.name in verbatim:
                converted.append(values)
            else:
                converted.append(_column_converter(column, self.dialect)(values))
        return list(zip(*converted, strict=True))

    def upsert(
        self,
        table: sa.Table,
        rows: list[dict[str, Any]],
        *,
        keep: Sequence[str] = (),
        overrides: dict[str, str] | None = None,
    ) -> None:
        """INSERT ... ON CONFLICT (pk) DO UPDATE every non-key column except `keep`."""
        if not rows:
            return
        self.write(table, self._tuples(table, rows, overrides or {}), keep=keep)

    def write(
        self, table: sa.Table, data: list[tuple[Any, ...]], *, keep: Sequence[str] = ()
    ) -> None:
        """Upsert driver-ready rows (in table column order); see upsert."""
        if not data:
            return
        columns = [c.name for c in table.columns]
        keys = [c.name for c in table.primary_key.columns]
        updates = [c for c in columns if c not in keys and c not in keep]
        collist = ", ".join(_quote(c) for c in columns)
        conflict = ", ".join(_quote(c) for c in keys)
        action = (
            "DO UPDATE SET " + ", ".join(f"{_quote(c)} = excluded.{_quote(c)}" for c in updates)
            if updates
            else "DO NOTHING"
        )
        if self.use_copy:
            # One staging table per session, emptied at every commit: creating (and dropping)
            # temp tables per batch churns the system catalogs, which bloat without vacuum and
            # make every later statement slower.
            stage = f"_rc_stage_{table.name}"
            self.conn.exec_driver_sql(
                f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {_quote(table.name)}) "
                "ON COMMIT DELETE ROWS"
            )
            self.conn.exec_driver_sql(f"DELETE FROM {stage}")  # empty unless used twice in a tx
            raw: Any = self.conn.connection.dbapi_connection  # psycopg.Connection
            with (
                raw.cursor() as cursor,
                cursor.copy(f"COPY {stage} ({collist}) FROM STDIN") as copy,
            ):
                for values in data:
                    copy.write_row(values)
            self.conn.exec_driver_sql(
                f"INSERT INTO {_quote(table.name)} ({collist}) SELECT {collist} FROM {stage} "
                f"ON CONFLICT ({conflict}) {action}"
            )
        else:
            marks = ", ".join([self.placeholder] * len(columns))
            self.conn.exec_driver_sql(
                f"INSERT INTO {_quote(table.name)} ({collist}) VALUES ({marks}) "
                f"ON CONFLICT ({conflict}) {action}",
                data,
            )

    def delete_keys(
        self, table: sa.Table, key_columns: Sequence[str], keys: list[tuple[Any, ...]]
    ) -> None:
        """Delete the rows with these primary keys (one executemany)."""
        if not keys:
            return
        where = " AND ".join(f"{_quote(c)} = {self.placeholder}" for c in key_columns)
        self.conn.exec_driver_sql(f"DELETE FROM {_quote(table.name)} WHERE {where}", keys)

    def stored_keys(
        self, table: sa.Table, org_pk: str, order_pks: Sequence[str], key_columns: Sequence[str]
    ) -> set[tuple[Any, ...]]:
        """Primary keys of `table` rows belonging to these orders."""
        found: set[tuple[Any, ...]] = set()
        cols = [table.c[c] for c in key_columns]
        for chunk in _chunks(list(order_pks)):
            query = sa.select(*cols).where(table.c.org_pk == org_pk, table.c.order_pk.in_(chunk))
            found.update(tuple(r) for r in self.conn.execute(query))
        return found


# PostgreSQL: refresh the planner statistics of the data tables after this many orders, then
# each time the count written by this loader doubles. A first load grows the tables from
# nothing; until they are analyzed the planner believes they are empty and the per-batch key
# lookups (org_pk = ? AND order_pk IN (...)) degrade to scanning the whole org, which makes a
# first sync quadratic (seen at 100k orders with autovacuum off; autovacuum also lags a bulk load).
ANALYZE_FIRST_AT = 5_000


class Loader:
    """Loads NormalizedBatch objects into the warehouse."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._orders_written = 0
        self._analyze_at = ANALYZE_FIRST_AT

    def load_batch(
        self,
        org_pk: str,
        batch: NormalizedBatch,
        *,
        checkpoint: datetime | None = None,
        live: bool = False,
        backfill_day: BackfillDay | None = None,
    ) -> LoadStats:
        """Apply one batch in ONE transaction (serialized per org); see docs/design.md."""
        if batch.org_pk != org_pk:
            raise ValueError(f"batch is for org {batch.org_pk!r}, not {org_pk!r}")
        if checkpoint is not None and checkpoint.tzinfo is None:
            raise ValueError("checkpoint must be timezone-aware")
        with write_transaction(self.engine, org_pk) as conn:
            stats = self._load(conn, org_pk, batch)
            if live and checkpoint is not None:
                stats.watermark = advance_watermark(conn, org_pk, checkpoint, batch.synced_at)
            if backfill_day is not None:
                record_day_done(conn, org_pk, backfill_day.key, backfill_day.day, batch.synced_at)
        self._orders_written += stats.orders_new + stats.orders_updated
        if self._orders_written >= self._analyze_at and self.engine.dialect.name == "postgresql":
            self._analyze_at = 2 * self._orders_written
            with self.engine.begin() as conn:
                conn.exec_driver_sql(
                    "ANALYZE " + ", ".join(_quote(name) for name in ("orders", *CHILD_TABLES))
                )
        return stats

    def _load(self, conn: Connection, org_pk: str, batch: NormalizedBatch) -> LoadStats:
        writer = _Writer(conn)
        stats = LoadStats(docs_skipped=batch.docs_skipped)
        orders = TABLES["orders"]
        synced_at = batch.synced_at
        stored: dict[str, tuple[datetime | None, str | None]] = {}
        for chunk in _chunks(batch.order_pks):
            query = sa.select(
                orders.c.order_pk, orders.c.nested_updated_at, orders.c.content_hash
            ).where(orders.c.org_pk == org_pk, orders.c.order_pk.in_(chunk))
            for pk, nested, digest in conn.execute(query):
                stored[pk] = (nested, digest)

        changed: list[str] = []
        unchanged: list[str] = []
        frame = batch.orders
        order_pks = frame["order_pk"].tolist()
        nested = frame["nested_updated_at"].tolist()
        hashes = frame["content_hash"].tolist()
        write_at: list[int] = []
        for index, pk in enumerate(order_pks):
            previous = stored.get(pk)
            if previous is None:
                stats.orders_new += 1
            else:
                old_nested, old_hash = previous
                new_nested = nested[index]
                if old_nested is not None and new_nested is not None and new_nested < old_nested:
                    stats.orders_skipped_older += 1
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

        for chunk in _chunks(unchanged):
            conn.execute(
                sa.update(orders)
                .where(orders.c.org_pk == org_pk, orders.c.order_pk.in_(chunk))
                .values(synced_at=synced_at, deleted_at=None)
            )
        if write_at:
            columns = _frame_columns(frame, write_at)
            columns["deleted_at"] = [None] * len(write_at)
            verbatim: tuple[str, ...] = ()
            if RAW_JSON in columns:  # the canonical JSON text the normalizer already made
                columns["raw"] = columns.pop(RAW_JSON)
                verbatim = ("raw",)
            writer.write(orders, writer.column_tuples(orders, columns, len(write_at), verbatim))
        stats.tables["orders"] = TableCounts(
            inserted=stats.orders_new, updated=stats.orders_updated
        )

        if changed:
            self._replace_children(writer, org_pk, batch, set(changed), stats)
        stats.issues_new = self._mirror_issues(writer, org_pk, batch, changed, synced_at)
        return stats

    def _replace_children(
        self,
        writer: _Writer,
        org_pk: str,
        batch: NormalizedBatch,
        changed: set[str],
        stats: LoadStats,
    ) -> None:
        changed_list = sorted(changed)
        incoming: dict[str, list[tuple[Any, ...]]] = {}
        stale: dict[str, list[tuple[Any, ...]]] = {}
        for name in CHILD_TABLES:
            table = TABLES[name]
            keys = [c.name for c in table.primary_key.columns]
            frame = batch.tables[name]
            if len(frame):
                owners = frame["order_pk"].tolist()
                if all(pk in changed for pk in owners):
                    columns = _frame_columns(frame, None)
                else:
                    columns = _frame_columns(
                        frame, [i for i, pk in enumerate(owners) if pk in changed]
                    )
            else:
                columns = {}
            n = len(columns["order_pk"]) if columns else 0
            incoming[name] = writer.column_tuples(table, columns, n) if n else []
            new_keys = set(zip(*(columns[k] for k in keys), strict=True)) if n else set()
            old_keys = writer.stored_keys(table, org_pk, changed_list, keys)
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
            writer.write(TABLES[name], incoming[name])

    def _mirror_issues(
        self,
        writer: _Writer,
        org_pk: str,
        batch: NormalizedBatch,
        changed: list[str],
        synced_at: datetime,
    ) -> int:
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
        return len(new_keys - old_keys)
