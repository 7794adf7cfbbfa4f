"""Dialect-aware bulk writes on one connection: executemany on SQLite, COPY on PostgreSQL.

Used by the loader, the history writer and the rebuild; imports nothing else of the
warehouse's loading code so that any of them can use it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from warehouse.db import chunks as _chunks
from warehouse.types import DecimalNumber, UTCDateTime, to_sqlite_text


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
        return lambda v: (
            None
            if v is None
            else json.dumps(v, ensure_ascii=False, allow_nan=False, sort_keys=True)
        )
    if isinstance(kind, sa.Boolean) and dialect == "sqlite":
        return lambda v: None if v is None else int(bool(v))
    if isinstance(kind, sa.Date):
        return lambda v: None if v is None else v.isoformat()
    return lambda v: v


# Below this many values a plain loop is cheaper than setting up the vectorized path.
VECTOR_MIN = 64
_TZINFO = attrgetter("tzinfo")
_UTC_SUFFIX = np.frombuffer("+00:00".encode("utf-32-le"), dtype=np.uint32)


def _utc_texts(values: list[Any]) -> list[Any] | None:
    """to_sqlite_text over a column of aware UTC datetimes (and None), vectorized.

    The text of every value is datetime.isoformat(timespec="microseconds") of a UTC
    datetime (always 26 characters for years 1-9999, plus "+00:00"): numpy's
    datetime_as_string at microseconds writes the same 26. None when a value is not exactly a
    datetime with tzinfo datetime.UTC (the caller's loop handles those).
    """
    present = [v for v in values if v is not None]
    if not present:
        return [None] * len(values)
    if set(map(type, present)) != {datetime} or set(map(_TZINFO, present)) != {UTC}:
        return None
    moments = pd.DatetimeIndex(present).tz_convert(None).to_numpy().astype("datetime64[us]")
    text = np.datetime_as_string(moments, unit="us").astype("<U26")
    m = len(text)
    codes = np.empty((m, 32), dtype=np.uint32)
    codes[:, :26] = text.view(np.uint32).reshape(m, 26)
    codes[:, 26:] = _UTC_SUFFIX
    texts: list[Any] = codes.view("<U32").ravel().tolist()
    if m == len(values):
        return texts
    found = iter(texts)
    return [None if v is None else next(found) for v in values]


def _sqlite_datetimes(values: list[Any]) -> list[Any]:
    """to_sqlite_text over a column; aware UTC datetimes (the normal case) take a short cut."""
    if len(values) >= VECTOR_MIN:
        texts = _utc_texts(values)
        if texts is not None:
            return texts
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
            out.append(dumps(value, ensure_ascii=False, allow_nan=False, sort_keys=True))
    return out


def column_converter(column: sa.Column[Any], dialect: str) -> Callable[[list[Any]], list[Any]]:
    """Like _converter, for a whole column at once (same results)."""
    kind = column.type
    if isinstance(kind, UTCDateTime) and dialect == "sqlite":
        return _sqlite_datetimes
    if isinstance(kind, sa.JSON) or column.name in ("raw", "tags", "custom_fields", "capabilities"):
        return _json_texts
    if isinstance(kind, UTCDateTime):
        return _unchanged
    if isinstance(kind, DecimalNumber):
        return _decimal_texts
    if isinstance(kind, sa.Boolean) and dialect == "sqlite":
        return _sqlite_booleans
    if isinstance(kind, sa.Date):
        return _date_texts
    return _unchanged


def _unchanged(values: list[Any]) -> list[Any]:
    return values


def _decimal_texts(values: list[Any]) -> list[Any]:
    return [None if v is None else str(v) for v in values]


def _sqlite_booleans(values: list[Any]) -> list[Any]:
    return [None if v is None else 1 if v else 0 for v in values]  # == int(bool(v))


def _date_texts(values: list[Any]) -> list[Any]:
    return [None if v is None else v.isoformat() for v in values]


_NONE = type(None)
_BIGINT = (-(2**63), 2**63 - 1)


def copy_type(values: list[Any]) -> str | None:
    """The PostgreSQL type to tell COPY for a driver-form column, or None to let psycopg pick.

    psycopg otherwise looks up a dumper for every value by its Python type; told the type
    once, it writes the same text: only exact types whose fixed dumper writes what the
    per-value choice writes are named (str: text; bool; int within bigint: psycopg picks
    int2/int4/int8/numeric by size, whose text is the digits either way; aware datetimes:
    timestamptz). A column of NULLs only: text.
    """
    kinds = set(map(type, values))
    kinds.discard(_NONE)
    if not kinds:
        return "text"
    if len(kinds) > 1:
        return None
    kind = kinds.pop()
    if kind is str:
        return "text"
    if kind is bool:
        return "bool"
    if kind is int:
        present = [v for v in values if v is not None]
        return "int8" if _BIGINT[0] <= min(present) and max(present) <= _BIGINT[1] else None
    if kind is datetime:  # filter(None, ...) drops the NULLs: a datetime is always true
        return "timestamptz" if None not in set(map(_TZINFO, filter(None, values))) else None
    return None


class DriverRows(list[tuple[Any, ...]]):
    """Driver-ready rows; `copy_types`: every column's COPY type when all are known."""

    copy_types: list[str] | None = None


def driver_rows(columns: list[list[Any]], copy: bool) -> DriverRows:
    """Rows from driver-form columns (in table order), with their COPY types when `copy`."""
    rows = DriverRows(zip(*columns, strict=True))
    if copy and rows:
        types: list[str] = []
        for values in columns:
            kind = copy_type(values)
            if kind is None:
                return rows
            types.append(kind)
        rows.copy_types = types
    return rows


def quote(name: str) -> str:
    return f'"{name}"'


class BulkWriter:
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
                converted.append(column_converter(column, self.dialect)(values))
        return driver_rows(converted, self.use_copy)

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
        self,
        table: sa.Table,
        data: list[tuple[Any, ...]],
        *,
        keep: Sequence[str] = (),
        when_differs: Sequence[str] = (),
        fresh: bool = False,
    ) -> int:
        """Upsert driver-ready rows (in table column order); see upsert.

        With `when_differs`, a stored row is updated only when one of those columns differs;
        returns the rows inserted or updated then (else the driver's row count). `fresh` says
        no row's key can be stored yet (a first load's new orders): on PostgreSQL they are
        copied straight into the table, and should a key exist after all, the copy is undone
        (a savepoint) and the rows are upserted as usual.
        """
        if not data:
            return 0
        if fresh and self.use_copy and not when_differs:
            copied = self._copy_fresh(table, data)
            if copied is not None:
                return copied
        columns = [c.name for c in table.columns]
        keys = [c.name for c in table.primary_key.columns]
        updates = [c for c in columns if c not in keys and c not in keep]
        collist = ", ".join(quote(c) for c in columns)
        conflict = ", ".join(quote(c) for c in keys)
        action = (
            "DO UPDATE SET " + ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in updates)
            if updates
            else "DO NOTHING"
        )
        if updates and when_differs:
            distinct = "IS NOT" if self.dialect == "sqlite" else "IS DISTINCT FROM"
            action += " WHERE " + " OR ".join(
                f"{quote(table.name)}.{quote(c)} {distinct} excluded.{quote(c)}"
                for c in when_differs
            )
        if self.use_copy:
            # One staging table per session, emptied at every commit: creating (and dropping)
            # temp tables per batch churns the system catalogs, which bloat without vacuum and
            # make every later statement slower.
            stage = f"_rc_stage_{table.name}"
            self.conn.exec_driver_sql(
                f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {quote(table.name)}) "
                "ON COMMIT DELETE ROWS"
            )
            self.conn.exec_driver_sql(f"DELETE FROM {stage}")  # empty unless used twice in a tx
            raw: Any = self.conn.connection.dbapi_connection  # psycopg.Connection
            with (
                raw.cursor() as cursor,
                cursor.copy(f"COPY {stage} ({collist}) FROM STDIN") as copy,
            ):
                types = getattr(data, "copy_types", None)
                if types is not None:  # one dumper per column instead of a lookup per value
                    copy.set_types(types)
                for values in data:
                    copy.write_row(values)
            result = self.conn.exec_driver_sql(
                f"INSERT INTO {quote(table.name)} ({collist}) SELECT {collist} FROM {stage} "
                f"ON CONFLICT ({conflict}) {action}"
            )
        else:
            marks = ", ".join([self.placeholder] * len(columns))
            result = self.conn.exec_driver_sql(
                f"INSERT INTO {quote(table.name)} ({collist}) VALUES ({marks}) "
                f"ON CONFLICT ({conflict}) {action}",
                data,
            )
        return int(result.rowcount)

    def _copy_fresh(self, table: sa.Table, data: list[tuple[Any, ...]]) -> int | None:
        """COPY rows straight into `table` (no staging, no conflict check); None on a key clash.

        The staging path writes every row twice (COPY into staging, then INSERT ... SELECT ...
        ON CONFLICT); for rows that cannot clash, once is enough.
        """
        from psycopg.errors import UniqueViolation  # only ever on psycopg connections

        collist = ", ".join(quote(c.name) for c in table.columns)
        raw: Any = self.conn.connection.dbapi_connection  # psycopg.Connection
        savepoint = self.conn.begin_nested()
        try:
            with (
                raw.cursor() as cursor,
                cursor.copy(f"COPY {quote(table.name)} ({collist}) FROM STDIN") as copy,
            ):
                types = getattr(data, "copy_types", None)
                if types is not None:  # see driver_rows
                    copy.set_types(types)
                for values in data:
                    copy.write_row(values)
        except UniqueViolation:
            savepoint.rollback()
            return None
        savepoint.commit()
        return len(data)

    def delete_keys(
        self, table: sa.Table, key_columns: Sequence[str], keys: list[tuple[Any, ...]]
    ) -> None:
        """Delete the rows with these primary keys (one executemany)."""
        if not keys:
            return
        converters = [_converter(table.c[c], self.dialect) for c in key_columns]
        data = [tuple(f(v) for f, v in zip(converters, key, strict=True)) for key in keys]
        where = " AND ".join(f"{quote(c)} = {self.placeholder}" for c in key_columns)
        self.conn.exec_driver_sql(f"DELETE FROM {quote(table.name)} WHERE {where}", data)

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
