"""Engine factory and transaction helpers for the warehouse (SQLite and PostgreSQL)."""

from __future__ import annotations

import logging
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, make_url

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_SCHEMA = "readycloud"
# How long any lock wait lasts before it fails with a message (RC_SYNC_LOCK_TIMEOUT): SQLite's
# busy timeout, PostgreSQL's lock_timeout for the per-batch write lock.
DEFAULT_LOCK_TIMEOUT_S = 60.0
SQLITE_BUSY_TIMEOUT_MS = 30_000  # kept for callers that build engines without make_engine
# A write transaction whose connection dropped is retried this often, with this back-off.
DISCONNECT_RETRIES = 3
DISCONNECT_BACKOFF_S = 0.5
# Identifiers that may be written into DDL (the schema name): strict, unquoted-safe.
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
# Advisory-lock namespaces (first int4 of the two-key form); run and batch locks must differ.
RUN_LOCK_CLASS = 0x52435255  # "RCRU"
BATCH_LOCK_CLASS = 0x52434257  # "RCBW"

# Rows per IN (...) list and per executemany chunk.
IN_CHUNK = 1000

_SCHEMAS: weakref.WeakKeyDictionary[Engine, str] = weakref.WeakKeyDictionary()
_LOCK_TIMEOUTS: weakref.WeakKeyDictionary[Engine, float] = weakref.WeakKeyDictionary()
_WRITE_OPTION = "rc_sync_write"
_OPENED = threading.Event()  # set once any warehouse connection was made in this process
_READ_ONLY: weakref.WeakSet[Engine] = weakref.WeakSet()


class WarehouseConfigError(ValueError):
    """The warehouse URL or schema is not usable."""


class WriteLockTimeout(RuntimeError):
    """Waited RC_SYNC_LOCK_TIMEOUT for an org's per-batch write lock."""

    def __init__(self, org_pk: str, timeout_s: float) -> None:
        super().__init__(
            f"waited {timeout_s:g}s for the warehouse write lock of org {org_pk}: another "
            "rc-sync process is writing that org (or is stopped in the middle of a batch); "
            "try again later, or raise RC_SYNC_LOCK_TIMEOUT"
        )
        self.org_pk = org_pk
        self.timeout_s = timeout_s


def warehouse_opened() -> bool:
    """True once this process has connected to a warehouse (later failures are runtime ones)."""
    return _OPENED.is_set()


def lock_timeout_of(engine: Engine) -> float:
    """The lock-wait limit the engine was made with (seconds)."""
    return _LOCK_TIMEOUTS.get(engine, DEFAULT_LOCK_TIMEOUT_S)


def is_disconnect(exc: BaseException) -> bool:
    """True when a database error means the connection itself was lost (worth a retry)."""
    return isinstance(exc, sa.exc.DBAPIError) and bool(exc.connection_invalidated)


_DISK_FULL = ("database or disk is full", "no space left on device", "disk quota exceeded")


def describe_db_error(exc: BaseException) -> str | None:
    """One sentence saying what a database error means (never its SQL or parameters), else None.

    Disk full, a locked SQLite file, a lost connection; any other driver error by its first line.
    """
    if not isinstance(exc, sa.exc.DBAPIError):
        return None
    lines = str(exc.orig).strip().splitlines()
    first = lines[0] if lines else type(exc.orig).__name__
    lowered = first.lower()
    if getattr(exc.orig, "sqlstate", None) in ("53100", "53000") or any(
        text in lowered for text in _DISK_FULL
    ):
        return f"disk full: the warehouse could not write ({first}); free some space and run again"
    if "database is locked" in lowered:
        return (
            "the SQLite warehouse is locked by another process (waited RC_SYNC_LOCK_TIMEOUT "
            f"for it: {first}); try again when the other writer has finished"
        )
    if is_disconnect(exc) or "connection" in lowered:
        return (
            f"the connection to the warehouse was lost ({first}) and could not be restored "
            f"after {DISCONNECT_RETRIES} attempts"
        )
    return f"the warehouse reported an error: {type(exc.orig).__name__}: {first}"


def retry_on_disconnect(
    action: Callable[[], T],
    *,
    attempts: int = DISCONNECT_RETRIES,
    backoff_s: float = DISCONNECT_BACKOFF_S,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run `action` (one whole transaction); retry it when the connection dropped under it."""
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except sa.exc.DBAPIError as exc:
            if not is_disconnect(exc) or attempt == attempts:
                raise
            wait = backoff_s * 2 ** (attempt - 1)
            first = str(exc.orig).strip().splitlines()
            log.warning(
                "the warehouse connection was lost (%s); retrying the transaction in %.1fs "
                "(attempt %d of %d)",
                first[0] if first else type(exc.orig).__name__,
                wait,
                attempt + 1,
                attempts,
            )
            sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover


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


_URL_HELP = "sqlite:///path/to/file.db or postgresql://user@host/dbname"


def warehouse_url(url: str) -> sa.URL:
    """WAREHOUSE_URL as a SQLAlchemy URL; `postgres://` and `postgresql://` mean psycopg 3.

    Heroku, Render and Supabase hand out `postgres://...`; SQLAlchemy knows only
    `postgresql`. Anything else that cannot be used is a WarehouseConfigError (one sentence,
    never the URL itself: it may hold a password).
    """
    text = (url or "").strip()
    if not text:
        raise WarehouseConfigError(f"WAREHOUSE_URL is empty: set it to {_URL_HELP}")
    try:
        parsed = make_url(text)
    except (sa.exc.ArgumentError, ValueError):
        raise WarehouseConfigError(
            f"WAREHOUSE_URL is not a database URL: use {_URL_HELP}"
        ) from None
    backend, _, driver = parsed.drivername.partition("+")
    if backend in ("postgres", "postgresql"):
        if driver not in ("", "psycopg"):
            raise WarehouseConfigError(
                f"WAREHOUSE_URL asks for the PostgreSQL driver {driver!r}; rc-sync uses psycopg 3: "
                "write postgresql:// (or postgresql+psycopg://)"
            )
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        if driver not in ("", "pysqlite"):
            raise WarehouseConfigError(
                f"WAREHOUSE_URL asks for the SQLite driver {driver!r}; write sqlite:///path/to/file.db"
            )
        return parsed
    raise WarehouseConfigError(
        f"WAREHOUSE_URL uses {backend!r}, an unsupported database: use {_URL_HELP}"
    )


def sqlite_path(url: sa.URL) -> str | None:
    """The file of a SQLite URL (also `file:` URIs), None for an in-memory database."""
    database = url.database or ""
    if database in ("", ":memory:"):
        return None
    if database.startswith("file:"):
        path = database[len("file:") :].split("?", 1)[0]
        return None if path in ("", ":memory:") or "mode=memory" in database else path
    return database


def sqlite_read_only(url: sa.URL) -> bool:
    """True when this process cannot write the SQLite file: `mode=ro`, or file/folder permissions."""
    import os

    path = sqlite_path(url)
    if path is None:
        return False
    if url.query.get("mode") == "ro" or "mode=ro" in (url.database or ""):
        return True
    if os.path.exists(path):
        return not os.access(path, os.W_OK)
    return False


def _sqlite_litter_free(url: sa.URL) -> sa.URL:
    """A read-only SQLite file opened without creating `-wal`/`-shm` files next to it.

    A WAL-mode database read by a process that cannot write it leaves both files behind (it
    cannot checkpoint them away). When neither exists (no writer has the file open), the file is
    opened immutable: SQLite reads it without any side file. Otherwise it is opened as given.
    """
    import os
    from urllib.parse import quote

    path = sqlite_path(url)
    if path is None or not sqlite_read_only(url) or not os.path.exists(path):
        return url
    if any(os.path.exists(path + suffix) for suffix in ("-wal", "-shm")):
        return url
    return sa.URL.create(
        "sqlite",
        database=f"file:{quote(os.path.abspath(path))}?mode=ro&immutable=1",
        query={"uri": "true"},
    )


def make_engine(
    url: str,
    schema: str = DEFAULT_SCHEMA,
    *,
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
    **kwargs: Any,
) -> Engine:
    """Create the warehouse engine: search_path on PostgreSQL; FKs, WAL, busy timeout on SQLite.

    `lock_timeout_s` bounds every lock wait (SQLite's busy timeout, PostgreSQL's lock_timeout
    on the per-batch write lock). Creates nothing in the database.
    """
    parsed = warehouse_url(url)
    if parsed.get_backend_name() == "postgresql":
        validate_schema(schema)
        engine = sa.create_engine(parsed, pool_pre_ping=True, **kwargs)
        _install_postgresql_hooks(engine, schema)
        _SCHEMAS[engine] = schema
    else:
        import os

        path = sqlite_path(parsed)
        folder = os.path.dirname(os.path.abspath(path)) if path else None
        if folder and not os.path.isdir(folder):
            raise WarehouseConfigError(
                f"the folder of the SQLite warehouse ({folder}) does not exist: create it or "
                "point WAREHOUSE_URL at an existing folder"
            )
        read_only = sqlite_read_only(parsed)
        connect_args = dict(kwargs.pop("connect_args", {}))
        connect_args.setdefault("timeout", lock_timeout_s)
        engine = sa.create_engine(_sqlite_litter_free(parsed), connect_args=connect_args, **kwargs)
        _install_sqlite_hooks(
            engine,
            in_memory=is_memory_sqlite(engine),
            busy_ms=int(lock_timeout_s * 1000),
            read_only=read_only,
        )
        if read_only:
            _READ_ONLY.add(engine)
    _LOCK_TIMEOUTS[engine] = lock_timeout_s
    event.listen(engine, "connect", lambda *_: _OPENED.set())
    return engine


def is_read_only(engine: Engine) -> bool:
    """True for a SQLite warehouse this process cannot write (see sqlite_read_only)."""
    return engine in _READ_ONLY


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


def _install_sqlite_hooks(
    engine: Engine,
    *,
    in_memory: bool,
    busy_ms: int = SQLITE_BUSY_TIMEOUT_MS,
    read_only: bool = False,
) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # SQLAlchemy emits BEGIN itself (see _on_begin), so sqlite3 must not.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_ms)}")
            if not in_memory and not read_only:  # switching to WAL is a write
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


def org_lock_name(engine: Engine | Connection, org_pk: str) -> str:
    """The text an org's PostgreSQL advisory locks are keyed by: schema and org.

    Advisory locks are per database, not per schema: keyed by the org alone, two warehouses
    in one database (staging and production schemas, parallel test suites) would wait on
    each other's runs of the same org.
    """
    return f"{engine_schema(engine) or ''}/{org_pk}"


@contextmanager
def write_transaction(engine: Engine, org_pk: str | None = None) -> Iterator[Connection]:
    """One write transaction, serialized per org: SQLite BEGIN IMMEDIATE, PostgreSQL xact lock."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn.execution_options(**{_WRITE_OPTION: True})
        with conn.begin():
            if engine.dialect.name == "postgresql" and org_pk is not None:
                timeout_s = lock_timeout_of(engine)
                # Bounded wait: a writer stopped mid-batch (SIGSTOP) must not block us forever.
                conn.exec_driver_sql(f"SET LOCAL lock_timeout = {max(1, int(timeout_s * 1000))}")
                try:
                    conn.execute(
                        sa.text("SELECT pg_advisory_xact_lock(:cls, hashtext(:org))"),
                        {"cls": BATCH_LOCK_CLASS, "org": org_lock_name(engine, org_pk)},
                    )
                except sa.exc.OperationalError as exc:
                    if getattr(exc.orig, "sqlstate", None) == "55P03":  # lock_not_available
                        raise WriteLockTimeout(org_pk, timeout_s) from None
                    raise
                conn.exec_driver_sql("SET LOCAL lock_timeout = 0")
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
