"""Migrations on both dialects: up twice, models match, comments, check_current errors."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Engine

from warehouse import migrate, models, views
from warehouse.db import WarehouseConfigError, engine_schema, make_engine
from warehouse.migrate import WarehouseNotMigrated, WarehouseOutdated


def test_upgrade_twice_is_idempotent(engine: Engine) -> None:
    assert migrate.current_revision(engine) is None
    head = migrate.head_revision()
    assert migrate.upgrade(engine) == head
    assert migrate.upgrade(engine) == head
    assert migrate.check_current(engine) == head
    names = set(sa.inspect(engine).get_table_names(schema=engine_schema(engine)))
    assert set(models.metadata.tables) <= names
    assert set(views.VIEW_NAMES) <= set(
        sa.inspect(engine).get_view_names(schema=engine_schema(engine))
    )


def test_models_match_migrated_schema(migrated: Engine) -> None:
    def include_name(name: str | None, type_: str, _parents: Any) -> bool:
        return not (type_ == "table" and name == "alembic_version")

    with migrated.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_name": include_name}
        )
        assert compare_metadata(context, models.metadata) == []


def test_check_current_not_migrated_names_the_command(engine: Engine) -> None:
    with pytest.raises(WarehouseNotMigrated, match="rc-sync migrate") as info:
        migrate.check_current(engine)
    assert info.value.reason == "missing"
    assert not isinstance(info.value, WarehouseOutdated)


def test_check_current_outdated(migrated: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    head = migrate.head_revision()
    monkeypatch.setattr(migrate, "head_revision", lambda: "9999")
    with pytest.raises(WarehouseOutdated, match=r"outdated.*rc-sync migrate") as info:
        migrate.check_current(migrated)
    assert info.value.reason == "outdated"
    assert info.value.current == head


def test_check_current_unknown_revision(migrated: Engine) -> None:
    with migrated.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = 'f00dfeed'"))
    with pytest.raises(WarehouseNotMigrated, match="newer rc-sync") as info:
        migrate.check_current(migrated)
    assert info.value.reason == "unknown"


@pytest.mark.postgres
def test_postgres_schema_comments_and_version_table(pg_target: Any) -> None:
    engine = make_engine(pg_target.url, pg_target.schema)
    try:
        migrate.upgrade(engine)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT current_schema()")).scalar() == pg_target.schema
            located = conn.execute(
                sa.text(
                    "SELECT table_schema FROM information_schema.tables "
                    "WHERE table_name = 'alembic_version' AND table_schema = :s"
                ),
                {"s": pg_target.schema},
            ).scalar()
            assert located == pg_target.schema
            comment = conn.execute(
                sa.text("SELECT col_description(:t ::regclass, 2)"),
                {"t": f"{pg_target.schema}.orders"},
            ).scalar()
            assert comment and "order pk" in comment
            view_comment = conn.execute(
                sa.text("SELECT obj_description(:t ::regclass, 'pg_class')"),
                {"t": f"{pg_target.schema}.order_lines"},
            ).scalar()
            assert view_comment and "item" in view_comment
            kinds = dict(
                conn.execute(
                    sa.text(
                        "SELECT column_name, data_type FROM information_schema.columns "
                        "WHERE table_schema = :s AND table_name = 'orders'"
                    ),
                    {"s": pg_target.schema},
                ).all()
            )
        assert kinds["ordered_at"] == "timestamp with time zone"
        assert kinds["raw"] == "jsonb"
        assert kinds["billing_total"] == "numeric"
    finally:
        engine.dispose()


def test_sqlite_pragmas(sqlite_target: Any) -> None:
    engine = make_engine(sqlite_target.url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000
    engine.dispose()


@pytest.mark.parametrize("bad", ["", "a-b", 'x"; DROP SCHEMA public; --', "1abc", "a" * 64])
def test_schema_name_is_validated(bad: str) -> None:
    with pytest.raises(WarehouseConfigError):
        make_engine("postgresql://postgres@127.0.0.1:5432/postgres", bad)


def test_unsupported_backend() -> None:
    with pytest.raises(WarehouseConfigError, match="unsupported"):
        make_engine("mysql://x@localhost/db")
