"""Alembic environment: the warehouse engine factory, batch mode on SQLite, schema on PostgreSQL.

Normally driven by `warehouse.migrate.upgrade(engine)` (which passes a connection in
`config.attributes["connection"]`); standalone runs read WAREHOUSE_URL / WAREHOUSE_SCHEMA
through `warehouse.settings.WarehouseSettings` (environment or `.env`).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from warehouse.db import engine_schema
from warehouse.models import metadata
from warehouse.settings import WarehouseSettings

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

    engine = WarehouseSettings().make_engine()  # type: ignore[call-arg]
    try:
        with upgrade_connection_env(engine) as conn:
            _configure(conn)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


def run_migrations_offline() -> None:
    """Emit SQL for WAREHOUSE_URL's dialect without connecting."""
    settings = WarehouseSettings()  # type: ignore[call-arg]
    context.configure(
        url=settings.warehouse_url,
        target_metadata=metadata,
        literal_binds=True,
        render_as_batch=settings.is_sqlite,
        compare_type=True,
        version_table_schema=None if settings.is_sqlite else settings.warehouse_schema,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
