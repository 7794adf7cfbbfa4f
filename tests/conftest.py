"""Shared fixtures: warehouses on SQLite and PostgreSQL, and a running sandbox."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PG_URL_ENV = "RC_SYNC_TEST_PG_URL"
REQUIRE_PG_ENV = "RC_SYNC_REQUIRE_POSTGRES"
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(autouse=True)
def _unthrottled_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sandbox is not throttled unless a test says so: no 30/min budget by default."""
    monkeypatch.setenv("READYCLOUD_RATE_LIMIT", os.environ.get("RC_SYNC_TEST_RATE_LIMIT", "off"))


@dataclass(frozen=True)
class WarehouseTarget:
    """Where a test's warehouse lives: a SQLAlchemy URL and the schema (PostgreSQL only)."""

    url: str
    schema: str
    dialect: str  # "sqlite" | "postgresql"


def _pg_admin_url() -> str:
    return os.environ.get(PG_URL_ENV, DEFAULT_PG_URL)


def _pg_reachable(url: str) -> str | None:
    """None when PostgreSQL answers at `url`, else the reason it does not."""
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        engine.dispose()
    except Exception as exc:  # any failure means "not reachable" for the skip reason
        return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    return None


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    """URL of a reachable PostgreSQL; fails in CI (RC_SYNC_REQUIRE_POSTGRES=1), else skips."""
    url = _pg_admin_url()
    problem = _pg_reachable(url)
    if problem:
        message = f"PostgreSQL not reachable at {url} ({problem})"
        if os.environ.get(REQUIRE_PG_ENV) == "1":
            pytest.fail(message + "; PostgreSQL tests are mandatory here", pytrace=False)
        pytest.skip(message)
    return url


def _drop_schema(url: str, schema: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


@pytest.fixture
def sqlite_target(tmp_path: Path) -> WarehouseTarget:
    """A fresh SQLite warehouse file in the test's temporary folder."""
    return WarehouseTarget(f"sqlite:///{tmp_path / 'warehouse.db'}", "readycloud", "sqlite")


@pytest.fixture
def pg_target(pg_admin_url: str) -> Iterator[WarehouseTarget]:
    """A fresh, uniquely named schema on the test PostgreSQL, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield WarehouseTarget(pg_admin_url, schema, "postgresql")
    _drop_schema(pg_admin_url, schema)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def target(request: pytest.FixtureRequest) -> WarehouseTarget:
    """The same test on SQLite and on PostgreSQL."""
    name = "sqlite_target" if request.param == "sqlite" else "pg_target"
    return request.getfixturevalue(name)
