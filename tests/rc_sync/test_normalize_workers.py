"""A sync and a rebuild with normalization in a worker process write exactly what they write
without one (RC_SYNC_NORMALIZE_WORKERS=0): the same rows in every table, history included."""

from __future__ import annotations

import dataclasses
import logging
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from support import make_settings, warehouse_engine

from rc_sandbox import SandboxConfig, SandboxServer
from rc_sync.engine import SyncEngine
from warehouse import migrate, normalize_pool

# Columns that say when a row was written, not what it holds.
VOLATILE = {"synced_at", "seen_at", "last_seen_at", "observed_at", "valid_to_seen_at"}
TABLES = (
    "orders",
    "boxes",
    "items",
    "addresses",
    "load_issues",
    "order_history",
    "box_history",
    "item_history",
)

pytestmark = pytest.mark.skipif(
    not normalize_pool.fork_available(), reason="worker processes are forked on Linux only"
)


def _rows(engine: sa.Engine, table: str) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT * FROM {table}")).mappings().all()
    return sorted(
        (tuple((k, repr(v)) for k, v in sorted(row.items()) if k not in VOLATILE) for row in rows),
    )


def _second(target: Any, tmp_path: Path) -> Any:
    """Another, empty warehouse of the same dialect."""
    if target.dialect == "sqlite":
        return dataclasses.replace(target, url=f"sqlite:///{tmp_path / 'reference.db'}")
    other = dataclasses.replace(target, schema=target.schema + "_ref")
    with warehouse_engine(other).begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{other.schema}"'))
    return other


def _engine(target: Any) -> sa.Engine:
    engine = warehouse_engine(target)
    migrate.upgrade(engine)
    return engine


def _sync(server: SandboxServer, target: Any, db: sa.Engine, workers: int) -> None:
    settings = make_settings(server, target, normalize_workers=workers, batch_orders=40)
    with SyncEngine(settings, db=db) as sync:
        sync.sync_incremental()


def test_worker_processes_change_nothing_in_the_warehouse(
    target: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="warehouse.normalize_pool")
    reference_target = _second(target, tmp_path)
    pooled, reference = _engine(target), _engine(reference_target)
    try:
        with SandboxServer(
            SandboxConfig(orgs=2, orders=240, seed=3, data_until=date(2025, 1, 1))
        ) as server:
            for round_ in range(2):
                caplog.clear()
                _sync(server, target, pooled, workers=1)
                # a first load uses the worker; a small refresh is not worth one
                assert ("normalizing in 1 worker process" in caplog.text) == (round_ == 0)
                caplog.clear()
                _sync(server, reference_target, reference, workers=0)
                assert "worker process" not in caplog.text
                if round_ == 0:  # a second version of some orders, for the history
                    for org in server.store.org_pks():
                        for pk in server.store.order_pks(org)[:30]:
                            server.store.update_order(org, pk, shipping_status="shipped")
            for table in TABLES:
                assert _rows(pooled, table) == _rows(reference, table), table
            # a rebuild of everything, through the worker, also changes nothing
            caplog.clear()
            settings = make_settings(server, target, normalize_workers=1, batch_orders=40)
            with SyncEngine(settings, db=pooled) as sync:
                report = sync.rebuild(all_rows=True)
            assert "normalizing in 1 worker process" in caplog.text
        assert report.total("orders_read") == len(_rows(pooled, "orders"))
        assert report.table_total("orders").updated == 0
        for table in TABLES:
            assert _rows(pooled, table) == _rows(reference, table), table
    finally:
        if target.dialect == "postgresql":
            with reference.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA "{reference_target.schema}" CASCADE'))
        reference.dispose()
        pooled.dispose()
