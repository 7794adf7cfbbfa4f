"""Engine factory and transaction helpers for the warehouse (SQLite and PostgreSQL)."""

from __future__ import annotations

import re
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, make_url

DEFAULT_SCHEMA = "readycloud"
SQLITE_BUSY_TIMEOUT_MS = 30_000
# Identifiers that may be written into DDL (the schema name): strict, unquoted-safe.
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
# Advisory-lock namespaces (first int4 of the two-key form); run and batch locks must differ.
RUN_LOCK_CLASS = 0x52435255  # "RCRU"
BATCH_LOCK_CLASS = 0x52434257  # "RCBW"

# Rows per IN (...) list and per executemany chunk.
IN_CHUNK = 1000

_SCHEMAS: weakref.WeakKeyDictionary[Engine, str] = weakref.WeakKeyDictionary()
_WRITE_OPTION = "rc_sync_write"


class WarehouseConfigError(ValueError):
    """The warehouse URL or schema is not usable."""


def validate_identifier(name: str) -> str:
    """Return `name` if it is a plain SQL identifier (letters, digits, _), else raise."""
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise WarehouseConfigError(
            f"invalid schema name {name!r}: use letters, digits and underscores "
            "(starting with a letter or underscore, at most 63 characters)"
        )
    return name


# Schemas PostgreSQL owns: writing there would mix our tables with the catalog (or fail oddly).
SYSTEM_SCHEMAS = frozenset({"information_schema", "pg_catalog", "pg_toast"})


def validate_schema(name: str) -> str:
    """`name` if it may hold the warehouse tables: a plain identifier, not a system schema."""
    validate_identifier(name)
    lowered = name.lower()
    if lowered in SYSTEM_SCHEMAS or lowered.startswith("pg_"):
        raise WarehouseConfigError(
            f"WAREHOUSE_SCHEMA={name} is a PostgreSQL system schema (information_schema and "
            "pg_* belong to the database itself); choose your own, e.g. readycloud"
        )
    return name


def quote_identifier(name: str) -> str:
    """Double-quote a validated identifier for DDL."""
    return f'"{validate_identifier(name)}"'


def make_engine(url: str, schema: str = DEFAULT_SCHEMA, **kwargs: Any) -> Engine:
    """Create the warehouse engine: search_path on PostgreSQL; FKs, WAL, busy timeout on SQLite.

    Creates nothing in the database.
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        validate_schema(schema)
        engine = sa.create_engine(parsed, pool_pre_ping=True, **kwargs)
        _install_postgresql_hooks(engine, schema)
        _SCHEMAS[engine] = schema
    elif backend == "sqlite":
        connect_args = dict(kwargs.pop("connect_args", {}))
        connect_args.setdefault("timeout", SQLITE_BUSY_TIMEOUT_MS / 1000)
        engine = sa.create_engine(parsed, connect_args=connect_args, **kwargs)
        _install_sqlite_hooks(engine, in_memory=is_memory_sqlite(engine))
    else:
        raise WarehouseConfigError(
            f"unsupported WAREHOUSE_URL backend {backend!r}: use sqlite:/// or postgresql://"
        )
    return engine


def engine_schema(engine: Engine | Connection) -> str | None:
    """The PostgreSQL schema the engine was made for (None on SQLite)."""
    eng = engine.engine if isinstance(engine, Connection) else engine
    if eng.dialect.name != "postgresql":
        return None
    return _SCHEMAS.get(eng, DEFAULT_SCHEMA)


def is_memory_sqlite(engine: Engine) -> bool:
    """True for an in-memory SQLite database."""
    database = engine.url.database
    return engine.dialect.name == "sqlite" and database in (None, "", ":memory:")


def _install_postgresql_hooks(engine: Engine, schema: str) -> None:
    statement = f"SET SESSION search_path TO {quote_identifier(schema)}"

    @event.listens_for(engine, "connect", insert=True)
    def _set_search_path(dbapi_connection: Any, _record: Any) -> None:
        autocommit = dbapi_connection.autocommit
        dbapi_connection.autocommit = True
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(statement)
        finally:
            cursor.close()
        dbapi_connection.autocommit = autocommit


def _install_sqlite_hooks(engine: Engine, *, in_memory: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # SQLAlchemy emits BEGIN itself (see _on_begin), so sqlite3 must not.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            if not in_memory:
                cursor.execute("PRAGMA journal_mode = WAL")
                cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get(_WRITE_OPTION):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


@contextmanager
def write_transaction(engine: Engine, org_pk: str | None = None) -> Iterator[Connection]:
    """One write transaction, serialized per org: SQLite BEGIN IMMEDIATE, PostgreSQL xact lock."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn.execution_options(**{_WRITE_OPTION: True})
        with conn.begin():
            if engine.dialect.name == "postgresql" and org_pk is not None:
                conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:cls, hashtext(:org))"),
                    {"cls": BATCH_LOCK_CLASS, "org": org_pk},
                )
            yield conn


def chunks(values: Sequence[Any], size: int = IN_CHUNK) -> Iterator[Sequence[Any]]:
    """Consecutive slices of at most `size` values (for IN lists)."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


def dialect_insert(conn: Connection, table: sa.Table) -> Any:
    """The dialect's INSERT construct (it has on_conflict_do_update)."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)
