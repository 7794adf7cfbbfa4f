"""Sync bookkeeping: runs, status, reconcile helpers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from warehouse import models, state
from warehouse.db import write_transaction
from warehouse.load import Loader
from warehouse.normalize import normalize_orders

T0 = datetime(2024, 6, 1, tzinfo=UTC)


def _runs(engine: Engine) -> list[dict[str, Any]]:
    """sync_runs, newest first."""
    runs = models.sync_runs_table
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(runs).order_by(runs.c.id.desc()))]


@dataclass
class FakeReport:
    """The attributes of rc_sync.report.RunReport that finish_run reads."""

    status: str = "success"
    error: str | None = None
    requests: int = 12
    retries: int = 1
    throttled: int = 0
    extra: dict[str, Any] = field(default_factory=lambda: {"when": T0})

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "extra": self.extra}


def test_runs_and_status(migrated: Engine, example_docs: list[dict[str, Any]]) -> None:
    docs = [*example_docs, {"url": "/api/v2/orgs/7/orders/9/", "ordered_at": "bad"}]
    run_id = state.begin_run(migrated, kind="incremental", org_pks=["7", "8"])
    row = {r.org_pk: r for r in state.status(migrated)}
    assert row["7"].last_run_status == "running" and row["8"].last_run_id == run_id
    Loader(migrated).load_batch("7", normalize_orders("7", docs, T0), checkpoint=T0, live=True)
    state.finish_run(migrated, run_id, FakeReport())
    rows = {r.org_pk: r for r in state.status(migrated)}
    seven = rows["7"]
    assert seven.watermark == T0 and seven.last_run_status == "success"
    assert seven.last_run_kind == "incremental" and seven.last_run_at is not None
    assert seven.row_counts == {"orders": 3, "boxes": 2, "items": 3, "addresses": 3}
    assert seven.open_issues == 1 and seven.orders_deleted == 0
    assert rows["8"].row_counts["orders"] == 0
    last = _runs(migrated)[0]
    assert last["id"] == run_id and last["requests"] == 12 and last["status"] == "success"
    assert last["counts"]["extra"]["when"].startswith("2024-06-01")
    assert last["orgs"] == ["7", "8"] and last["finished_at"] is not None

    failed = state.begin_run(migrated, kind="reconcile", org_pks=["7"])
    state.finish_run(migrated, failed, status="failed", error="boom")
    assert state.status(migrated, ["7"])[0].last_run_status == "failed"
    assert _runs(migrated)[0]["error"] == "boom"


def test_known_orders_and_deletion_marks(
    migrated: Engine, example_docs: list[dict[str, Any]]
) -> None:
    Loader(migrated).load_batch("7", normalize_orders("7", example_docs, T0))
    known = state.known_orders(migrated, "7")
    assert known == {
        "5120": datetime(2024, 5, 3, 9, 41, 17, 52901, tzinfo=UTC),
        "5121": datetime(2024, 5, 2, 15, 31, 12, 20443, tzinfo=UTC),
    }
    assert state.mark_deleted(migrated, "7", ["5121", "nope"], T0) == 1
    assert state.mark_deleted(migrated, "7", ["5121"], T0) == 0
    assert set(state.known_orders(migrated, "7")) == {"5120"}
    assert set(state.known_orders(migrated, "7", include_deleted=True)) == {"5120", "5121"}
    assert state.deleted_orders(migrated, "7") == {"5121": T0}
    assert state.status(migrated)[0].orders_deleted == 1
    assert state.clear_deleted(migrated, "7", ["5121"]) == 1
    assert state.deleted_orders(migrated, "7") == {}


def test_watermark_helpers_and_capabilities(migrated: Engine) -> None:
    assert state.get_watermark(migrated, "7") is None
    with write_transaction(migrated, "7") as conn:
        assert state.advance_watermark(conn, "7", T0, T0) == T0
        assert state.advance_watermark(conn, "7", datetime(2020, 1, 1, tzinfo=UTC), T0) == T0
    assert state.get_watermark(migrated, "7") == T0
    assert state.get_capabilities(migrated, "7") is None
    state.set_capabilities(migrated, "7", {"filters": True})
    assert state.get_capabilities(migrated, "7") == {"filters": True}
