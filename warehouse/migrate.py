"""Run and check the alembic migrations of the warehouse (configured in code, no alembic.ini)."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

from warehouse.db import DEFAULT_SCHEMA, engine_schema, quote_identifier
from warehouse.settings import WarehouseSettings

MIGRATE_LOCK_CLASS = 0x52434D47  # "RCMG": serializes concurrent `rc-sync migrate` runs
MIGRATE_COMMAND = "rc-sync migrate"


class WarehouseNotMigrated(RuntimeError):
    """The warehouse schema is missing or not at this rc-sync's revision."""

    def __init__(self, message: str, *, reason: str, current: str | None, head: str) -> None:
        super().__init__(message)
        self.reason = reason  # "missing" | "outdated" | "unknown"
        self.current = current
        self.head = head


class WarehouseOutdated(WarehouseNotMigrated):
    """The warehouse was migrated, but to an older revision than this rc-sync needs."""


def migrations_dir() -> Path:
    """The folder holding alembic's env.py and versions/."""
    spec = importlib.util.find_spec("migrations")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the `migrations` package is not importable; reinstall rc-sync")
    return Path(next(iter(spec.submodule_search_locations)))


def alembic_config(connection: Connection | None = None) -> Config:
    """An alembic Config built in code (script location = the migrations package)."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision this rc-sync ships."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError("no migration revisions found")
    return head


def _current_on(conn: Connection) -> str | None:
    schema = engine_schema(conn)
    context = MigrationContext.configure(conn, opts={"version_table_schema": schema})
    return context.get_current_revision()


def current_revision(engine: Engine) -> str | None:
    """The revision the warehouse is at (None when it was never migrated)."""
    with engine.connect() as conn:
        return _current_on(conn)


def _safe_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def check_current(engine: Engine) -> str:
    """Return the current revision; raise WarehouseNotMigrated unless it is the head."""
    head = head_revision()
    current = current_revision(engine)
    where = _safe_url(engine)
    schema = engine_schema(engine)
    if schema:
        where += f" (schema {schema})"
    if current == head:
        return current
    if current is None:
        raise WarehouseNotMigrated(
            f"the warehouse at {where} has no rc-sync tables yet: run `{MIGRATE_COMMAND}` first",
            reason="missing",
            current=None,
            head=head,
        )
    script = ScriptDirectory.from_config(alembic_config())
    try:
        known = script.get_revision(current) is not None
    except Exception:  # alembic raises for unknown/ambiguous ids
        known = False
    if known:
        raise WarehouseOutdated(
            f"the warehouse at {where} is outdated (revision {current}, this rc-sync needs "
            f"{head}): run `{MIGRATE_COMMAND}`",
            reason="outdated",
            current=current,
            head=head,
        )
    raise WarehouseNotMigrated(
        f"the warehouse at {where} is at revision {current}, which this rc-sync does not know "
        f"(it needs {head}); it was probably migrated by a newer rc-sync: upgrade rc-sync, "
        f"or run `{MIGRATE_COMMAND}` with the matching version",
        reason="unknown",
        current=current,
        head=head,
    )


@contextmanager
def upgrade_connection_env(engine: Engine) -> Iterator[Connection]:
    """A connection in one transaction, ready for DDL.

    PostgreSQL: serialized by an advisory lock, schema created if missing. SQLite: foreign
    keys off for the duration (batch table rebuilds must not cascade), BEGIN IMMEDIATE.
    """
    dialect = engine.dialect.name
    with engine.connect() as conn:
        if dialect == "sqlite":
            raw = conn.connection.dbapi_connection
            assert raw is not None
            raw.execute("PRAGMA foreign_keys = OFF")  # no-op inside a transaction: do it first
            conn.execution_options(rc_sync_write=True)
        try:
            with conn.begin():
                if dialect == "postgresql":
                    schema = engine_schema(engine) or DEFAULT_SCHEMA
                    conn.execute(
                        sa.text("SELECT pg_advisory_xact_lock(:cls, hashtext(:schema))"),
                        {"cls": MIGRATE_LOCK_CLASS, "schema": schema},
                    )
                    conn.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {quote_identifier(schema)}")
                yield conn
                if dialect == "sqlite":
                    problems = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if problems:
                        raise RuntimeError(
                            f"foreign key violations after migration: {problems[:5]}"
                        )
        finally:
            if dialect == "sqlite":
                raw = conn.connection.dbapi_connection
                if raw is not None:
                    raw.execute("PRAGMA foreign_keys = ON")


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Apply migrations up to `revision` (creating the schema on PostgreSQL); idempotent."""
    with upgrade_connection_env(engine) as conn:
        command.upgrade(alembic_config(conn), revision)
        if conn.dialect.name == "postgresql":
            apply_comments(conn)
    return current_revision(engine)


def apply_comments(conn: Connection) -> None:
    """COMMENT ON every table, view and column that exists, from the data dictionary."""
    from warehouse import dictionary

    inspector = sa.inspect(conn)
    schema = engine_schema(conn)
    existing_tables = set(inspector.get_table_names(schema=schema))
    existing_views = set(inspector.get_view_names(schema=schema))
    for kind, docs, existing in (
        ("TABLE", dictionary.TABLES, existing_tables),
        ("VIEW", dictionary.VIEWS, existing_views),
    ):
        for name, doc in docs.items():
            if name not in existing:
                continue
            qualified = f"{quote_identifier(schema or DEFAULT_SCHEMA)}.{quote_identifier(name)}"
            conn.exec_driver_sql(
                f"COMMENT ON {kind} {qualified} IS {_literal(conn, doc.description)}"
            )
            columns = {c["name"] for c in inspector.get_columns(name, schema=schema)}
            for column, col_doc in doc.columns.items():
                if column in columns:
                    conn.exec_driver_sql(
                        f"COMMENT ON COLUMN {qualified}.{quote_identifier(column)} "
                        f"IS {_literal(conn, col_doc.comment())}"
                    )


def _literal(conn: Connection, text: str) -> str:
    """A string literal for COMMENT (which takes no bind parameters), quoted by the dialect."""
    return str(
        sa.literal(text, sa.Text()).compile(
            dialect=conn.dialect, compile_kwargs={"literal_binds": True}
        )
    )


def main(argv: list[str] | None = None) -> int:
    """`python -m warehouse.migrate [upgrade|current|check]` against WAREHOUSE_URL."""
    parser = argparse.ArgumentParser(prog="python -m warehouse.migrate")
    parser.add_argument(
        "action", nargs="?", default="upgrade", choices=["upgrade", "current", "check"]
    )
    args = parser.parse_args(argv)
    engine = WarehouseSettings().make_engine()  # type: ignore[call-arg]
    try:
        if args.action == "upgrade":
            print(f"warehouse at revision {upgrade(engine)}")
        elif args.action == "current":
            print(current_revision(engine) or "(not migrated)")
        else:
            try:
                print(check_current(engine))
            except WarehouseNotMigrated as exc:
                print(exc, file=sys.stderr)
                return 1
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
