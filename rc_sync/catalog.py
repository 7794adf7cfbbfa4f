"""What the warehouse holds, described for catalogs (Dagster's asset pages): tables, columns,
types in the configured database's own dialect, and where the data is stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.engine import make_url

from rc_common.tables import DATA_TABLES, PARENTS, VIEW_NAMES
from rc_common.tables import TABLE_KEYS as PRIMARY_KEYS
from rc_sync.settings import SandboxSettings
from warehouse import dictionary, models
from warehouse.settings import WarehouseSettings

# The table names and keys, for the Dagster layer (which imports only dagster and rc_sync).
__all__ = [
    "DATA_TABLES",
    "PARENTS",
    "PRIMARY_KEYS",
    "VIEW_NAMES",
    "ColumnInfo",
    "RelationInfo",
    "configured_warehouse",
    "describe",
    "dialect_of",
]


@dataclass(frozen=True)
class ColumnInfo:
    """One column as a catalog shows it."""

    name: str
    type: str
    description: str | None
    nullable: bool | None


@dataclass(frozen=True)
class RelationInfo:
    """A table or view: description, columns, key, and where it is stored."""

    name: str
    description: str | None
    columns: list[ColumnInfo]
    primary_key: list[str]
    qualified_name: str  # e.g. warehouse.readycloud.orders (PostgreSQL) or main.orders (SQLite)
    storage: str  # the database, without credentials


def configured_warehouse() -> WarehouseSettings:
    """The warehouse a code location will write to, for describing it (never raises).

    WAREHOUSE_URL/WAREHOUSE_SCHEMA; in sandbox mode without WAREHOUSE_URL, the sandbox's own
    SQLite database. Unusable values fall back to the defaults: a run reports them.
    """
    try:
        warehouse = WarehouseSettings()  # type: ignore[call-arg]
    except ValidationError:
        return WarehouseSettings.model_construct()
    try:
        sandbox = SandboxSettings()  # type: ignore[call-arg]
    except ValidationError:
        return warehouse
    if sandbox.enabled and "warehouse_url" not in warehouse.model_fields_set:
        return warehouse.model_copy(update={"warehouse_url": sandbox.default_warehouse_url()})
    return warehouse


def dialect_of(warehouse: WarehouseSettings) -> sa.Dialect:
    """The SQLAlchemy dialect of the configured warehouse (SQLite when the URL is unusable)."""
    try:
        url = make_url(warehouse.warehouse_url)
        return url.get_dialect()()
    except Exception:  # an unusable URL fails the run with a clear message, not the catalog
        return sa.dialects.sqlite.dialect()


def _type_name(column: sa.Column[Any], dialect: sa.Dialect) -> str:
    """The column's type as the warehouse's own database names it."""
    try:
        return str(column.type.compile(dialect=dialect)).lower()
    except Exception:  # a type without a rendering on this dialect
        return type(column.type).__name__.lower()


def storage_of(warehouse: WarehouseSettings) -> str:
    """The warehouse's database as text without a password (for catalogs and logs)."""
    try:
        return make_url(warehouse.warehouse_url).render_as_string(hide_password=True)
    except Exception:
        return "(unusable WAREHOUSE_URL)"


def _qualified(name: str, warehouse: WarehouseSettings, dialect: sa.Dialect) -> str:
    if dialect.name == "sqlite":
        return f"main.{name}"
    try:
        database = make_url(warehouse.warehouse_url).database or ""
    except Exception:
        database = ""
    parts = [database, warehouse.warehouse_schema, name]
    return ".".join(p for p in parts if p)


def describe(name: str, warehouse: WarehouseSettings) -> RelationInfo:
    """A data table or analyst view of the warehouse, typed for its configured dialect."""
    dialect = dialect_of(warehouse)
    doc = dictionary.TABLES.get(name) or dictionary.VIEWS.get(name)
    table = models.metadata.tables.get(name)
    columns: list[ColumnInfo] = []
    key: list[str] = []
    if table is not None:
        for column in table.columns:
            col_doc = doc.columns.get(column.name) if doc else None
            columns.append(
                ColumnInfo(
                    column.name,
                    _type_name(column, dialect),
                    col_doc.comment() if col_doc else None,
                    bool(column.nullable),
                )
            )
        key = [c.name for c in table.primary_key.columns]
    elif doc is not None:  # a view: its dictionary entry is the schema
        columns = [ColumnInfo(n, d.unit, d.description, None) for n, d in doc.columns.items()]
    return RelationInfo(
        name=name,
        description=doc.description if doc else None,
        columns=columns,
        primary_key=key,
        qualified_name=_qualified(name, warehouse, dialect),
        storage=f"{dialect.name}: {storage_of(warehouse)}",
    )
