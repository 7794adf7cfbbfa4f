"""Alembic environment: the warehouse engine factory, batch mode on SQLite, schema on PostgreSQL.

Normally driven by `warehouse.migrate.upgrade(engine)` (which passes a connection in
`config.attributes["connection"]`); standalone runs read WAREHOUSE_URL / WAREHOUSE_SCHEMA.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy.engine import Connection

from warehouse.db import DEFAULT_SCHEMA, engine_schema, make_engine
from warehouse.models import metadata

config = context.config


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Leave alembic's own version table out of autogenerate comparisons."""
    return not (type_ == "table" and name == "alembic_version")


def _configure(connection: Connection) -> None:
    schema = engine_schema(connection)
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        version_table_schema=schema,
        transaction_per_migration=False,
        include_name=include_name,
    )


def run_migrations_online() -> None:
    """Run against the connection handed over by warehouse.migrate, or one built from env vars."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    from warehouse.migrate import upgrade_connection_env  # standalone `alembic` invocation

    url = os.environ.get("WAREHOUSE_URL", "sqlite:///readycloud.db")
    schema = os.environ.get("WAREHOUSE_SCHEMA", DEFAULT_SCHEMA)
    engine = make_engine(url, schema)
    try:
        with upgrade_connection_env(engine) as conn:
            _configure(conn)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


def run_migrations_offline() -> None:
    """Emit SQL for WAREHOUSE_URL's dialect without connecting."""
    url = os.environ.get("WAREHOUSE_URL", "sqlite:///readycloud.db")
    schema = os.environ.get("WAREHOUSE_SCHEMA", DEFAULT_SCHEMA)
    is_sqlite = url.startswith("sqlite")
    context.configure(
        url=url,
        target_metadata=metadata,
        literal_binds=True,
        render_as_batch=is_sqlite,
        compare_type=True,
        version_table_schema=None if is_sqlite else schema,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
