"""The warehouse's own settings: WAREHOUSE_URL and WAREHOUSE_SCHEMA (environment or `.env`).

Used by alembic's `migrations/env.py`, `python -m warehouse.migrate` and, composed into
`rc_sync.Settings`, by the command line and Dagster.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import Engine

from warehouse.db import (
    DEFAULT_LOCK_TIMEOUT_S,
    DEFAULT_SCHEMA,
    WarehouseConfigError,
    make_engine,
    validate_identifier,
    validate_schema,
    warehouse_url,
)

DEFAULT_WAREHOUSE_URL = "sqlite:///readycloud.db"


class WarehouseSettings(BaseSettings):
    """Where the warehouse lives: a SQLAlchemy URL and, on PostgreSQL, a schema."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    warehouse_url: str = Field(
        DEFAULT_WAREHOUSE_URL, validation_alias=AliasChoices("warehouse_url", "WAREHOUSE_URL")
    )
    warehouse_schema: str = Field(
        DEFAULT_SCHEMA, validation_alias=AliasChoices("warehouse_schema", "WAREHOUSE_SCHEMA")
    )

    @field_validator("warehouse_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        # postgres:// becomes postgresql+psycopg://; an unusable URL is a configuration error.
        try:
            return warehouse_url(value).render_as_string(hide_password=False)
        except WarehouseConfigError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("warehouse_schema")
    @classmethod
    def _check_schema(cls, value: str) -> str:
        try:
            validate_identifier(value)
        except WarehouseConfigError:
            raise ValueError(
                "WAREHOUSE_SCHEMA must be a plain identifier (letters, digits, underscore)"
            ) from None
        try:
            return validate_schema(value)
        except WarehouseConfigError as exc:
            raise ValueError(str(exc)) from None

    @property
    def is_sqlite(self) -> bool:
        """True when the warehouse is an embedded SQLite database."""
        return self.warehouse_url.startswith("sqlite")

    def make_engine(self, *, lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S) -> Engine:
        """A SQLAlchemy engine on the warehouse (search_path set on PostgreSQL)."""
        return make_engine(self.warehouse_url, self.warehouse_schema, lock_timeout_s=lock_timeout_s)
