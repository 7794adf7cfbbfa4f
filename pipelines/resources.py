"""Dagster resources: the ReadyCloud API connection and the warehouse, as one rc_sync engine."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import dagster as dg
import sqlalchemy as sa
from pydantic import Field

from rc_sync.errors import ConfigError, is_fatal
from rc_sync.settings import Settings, load_settings
from warehouse.db import make_engine

if TYPE_CHECKING:
    from rc_sync.engine import SyncEngine

TOKEN_ENV = "READYCLOUD_API_TOKEN"  # noqa: S105 (a variable name, not a secret)
SETUP_HINT = (
    "Set READYCLOUD_API_TOKEN (and READYCLOUD_BASE_URL, READYCLOUD_ORGS, WAREHOUSE_URL, "
    "WAREHOUSE_SCHEMA as needed) in the environment of the Dagster code location, or start "
    "it with RC_SANDBOX=1 to use the built-in sandbox."
)


class ReadyCloudResource(dg.ConfigurableResource):
    """The ReadyCloud API: host, token (from READYCLOUD_API_TOKEN), orgs and request budget."""

    base_url: str | None = Field(
        default=None,
        description="API host; empty = READYCLOUD_BASE_URL or https://www.readycloud.com.",
    )
    api_token: str | None = Field(
        default=None,
        description="Bearer token, given as EnvVar('READYCLOUD_API_TOKEN') so it is never shown.",
    )
    orgs: list[str] | None = Field(
        default=None,
        description="Org pks to sync; empty = READYCLOUD_ORGS or every org the token sees.",
    )
    max_rps: float | None = Field(
        default=None, description="Requests per second ceiling (RC_SYNC_MAX_RPS)."
    )
    concurrency: int | None = Field(
        default=None, description="Pages fetched in parallel (RC_SYNC_CONCURRENCY)."
    )


class WarehouseResource(dg.ConfigurableResource):
    """The SQL warehouse the tables live in (WAREHOUSE_URL, WAREHOUSE_SCHEMA)."""

    url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; empty = WAREHOUSE_URL or sqlite:///readycloud.db.",
    )
    schema_: str | None = Field(
        default=None,
        alias="schema",
        description="PostgreSQL schema; empty = WAREHOUSE_SCHEMA or readycloud.",
    )
    auto_migrate: bool | None = Field(
        default=None,
        description="Apply migrations before a run; empty = only for the embedded SQLite default.",
    )

    def settings(self) -> Settings:
        """Warehouse settings (environment defaults plus this resource's values)."""
        return _settings(warehouse_url=self.url, warehouse_schema=self.schema_)

    def make_engine(self) -> sa.Engine:
        """A SQLAlchemy engine on the warehouse (search_path set on PostgreSQL)."""
        s = self.settings()
        return make_engine(s.warehouse_url, s.warehouse_schema)


def _settings(**overrides: object) -> Settings:
    """rc_sync Settings from the environment plus overrides, as a Dagster Failure when wrong."""
    try:
        return load_settings(**overrides)
    except ConfigError as exc:
        raise dg.Failure(description=f"{exc}. {SETUP_HINT}", allow_retries=False) from None


def build_settings(readycloud: ReadyCloudResource, warehouse: WarehouseResource) -> Settings:
    """Settings for one run; fails with what to set when the token is missing or a value is bad."""
    token = readycloud.api_token or os.environ.get(TOKEN_ENV) or None
    settings = _settings(
        readycloud_base_url=readycloud.base_url or None,
        readycloud_api_token=token,
        readycloud_orgs=",".join(readycloud.orgs) if readycloud.orgs else None,
        max_rps=readycloud.max_rps,
        concurrency=readycloud.concurrency,
        warehouse_url=warehouse.url,
        warehouse_schema=warehouse.schema_,
    )
    try:
        settings.require_token()
    except ConfigError as exc:
        raise dg.Failure(description=f"{exc} {SETUP_HINT}", allow_retries=False) from None
    return settings


@contextmanager
def open_engine(
    readycloud: ReadyCloudResource, warehouse: WarehouseResource
) -> Iterator[SyncEngine]:
    """A SyncEngine for one run, closed afterwards; configuration errors become Failures."""
    from rc_sync.engine import SyncEngine  # imported per run: keeps the code location light

    settings = build_settings(readycloud, warehouse)
    with SyncEngine(settings, auto_migrate=warehouse.auto_migrate) as engine:
        try:
            yield engine
        except ConfigError as exc:
            raise dg.Failure(description=f"{exc} {SETUP_HINT}", allow_retries=False) from None


@contextmanager
def fatal_errors_fail_fast() -> Iterator[None]:
    """Turn configuration, credential and guard errors into Failures that are not retried."""
    try:
        yield
    except Exception as exc:
        if is_fatal(exc):
            raise dg.Failure(description=str(exc), allow_retries=False) from None
        raise
