"""`rc-sync rebuild`: re-derives the typed tables from stored documents, with no API request.

After a normalization version bump (or rows left by an older normalizer), a rebuild makes
orders, boxes, items, addresses and load_issues identical to a fresh sync of the same
source, re-types the history rows, makes zero requests, and survives a SIGKILL mid-way.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from support import cli_env, make_settings, run_cli, warehouse_engine

from rc_sandbox import SandboxServer
from rc_sync.engine import SyncEngine
from warehouse import load, migrate, normalize, rebuild, state

RELIABILITY = Path(__file__).resolve().parent.parent / "reliability"
# Columns a rebuild leaves as they are (when the row was synced / an issue first seen).
VOLATILE = {"synced_at", "seen_at", "last_seen_at"}
TABLES = ("orders", "boxes", "items", "addresses", "load_issues")


def _table(engine: sa.Engine, name: str, drop: set[str] = VOLATILE) -> set[tuple[Any, ...]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT * FROM {name}")).mappings().all()
    out = set()
    for row in rows:
        out.add(tuple(sorted((k, _plain(v)) for k, v in row.items() if k not in drop)))
    return out


def _plain(value: Any) -> Any:
    """JSON values (dicts, or JSON text on SQLite) as sorted-key text; the rest unchanged."""
    if isinstance(value, str) and value[:1] in "[{":
        try:
            value = json.loads(value)
        except ValueError:
            return value
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return value


def _history(engine: sa.Engine) -> dict[str, set[tuple[Any, ...]]]:
    drop = {"normalize_version"}
    return {t: _table(engine, t, drop) for t in ("order_history", "box_history", "item_history")}


def _corrupt(engine: sa.Engine) -> None:
    """What an older normalizer might have left: wrong values, missing rows, stale issues."""
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE orders SET billing_total = NULL, ship_via = 'old', normalize_version = 0"
            )
        )
        conn.execute(sa.text("UPDATE items SET quantity = quantity + 1"))
        conn.execute(sa.text("DELETE FROM addresses WHERE role = 'ship_from'"))
        conn.execute(
            sa.text(
                "DELETE FROM items WHERE box_pk IN (SELECT box_pk FROM boxes WHERE description IS NOT NULL)"
            )
        )
        conn.execute(sa.text("UPDATE boxes SET weight_g = 1"))
        conn.execute(
            sa.text("UPDATE order_history SET shipping_status = 'old', billing_total = NULL")
        )
        conn.execute(sa.text("UPDATE item_history SET quantity = NULL"))
        conn.execute(sa.text("UPDATE box_history SET tracking_number = 'old'"))
        org, pk = conn.execute(sa.text("SELECT org_pk, order_pk FROM orders LIMIT 1")).one()
        conn.execute(
            sa.text(
                "INSERT INTO load_issues (org_pk, order_pk, table_name, row_key, column_name, "
                "raw_value, message, seen_at, last_seen_at) VALUES "
                "(:o, :p, 'orders', '', 'ship_via', 'x', 'an old parser complained', :t, :t)"
            ),
            {"o": org, "p": pk, "t": "2024-01-01T00:00:00.000000+00:00"},
        )


def _fresh(server: SandboxServer, target: Any, tmp_path: Path) -> tuple[sa.Engine, Any]:
    """A second warehouse with a fresh sync of the same source."""
    fresh = type(target)(
        url=f"sqlite:///{tmp_path / 'fresh.db'}" if target.dialect == "sqlite" else target.url,
        schema=target.schema + "_f" if target.dialect == "postgresql" else target.schema,
        dialect=target.dialect,
    )
    engine = warehouse_engine(fresh)
    if target.dialect == "postgresql":
        with engine.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{fresh.schema}"'))
    migrate.upgrade(engine)
    with SyncEngine(make_settings(server, fresh), db=engine) as sync:
        sync.sync_incremental()
    return engine, fresh


def _drop(engine: sa.Engine, target: Any) -> None:
    if target.dialect == "postgresql":
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{target.schema}" CASCADE'))
    engine.dispose()


def _sync_with_history(server: SandboxServer, target: Any) -> sa.Engine:
    """Sync, change a few orders, sync again (so history holds several versions)."""
    settings = make_settings(server, target)
    with SyncEngine(settings, auto_migrate=True) as engine:
        engine.sync_incremental()
        store = server.store
        for org in store.org_pks():
            for pk in store.order_pks(org)[:5]:
                store.update_order(org, pk, shipping_status="shipped")
        engine.sync_incremental()
    return warehouse_engine(target)


def test_rebuild_after_version_bump_equals_a_fresh_sync(
    sandbox: SandboxServer, target: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bump NORMALIZE_VERSION: status says stale, rebuild fixes every table, no request made."""
    db = _sync_with_history(sandbox, target)
    history_before = _history(db)
    _corrupt(db)
    for module in (normalize, load, rebuild, state):
        monkeypatch.setattr(module, "NORMALIZE_VERSION", 2)
    total = sum(r.row_counts["orders"] for r in state.status(db))
    assert sum(r.stale_orders for r in state.status(db)) == total
    requests = sandbox.stats.snapshot()["requests"]
    settings = make_settings(sandbox, target, batch_orders=70)
    with SyncEngine(settings, db=db) as engine:
        report = engine.rebuild()
    assert sandbox.stats.snapshot()["requests"] == requests, "rebuild made an API request"
    assert report.status == "success"
    assert report.total("orders_read") == total
    assert report.table_total("orders").updated == total  # billing_total and ship_via restored
    assert report.table_total("addresses").updated > 0 and report.table_total("items").updated > 0
    assert report.total("load_issues_closed") == 1
    assert sum(r.stale_orders for r in state.status(db)) == 0

    fresh_db, fresh = _fresh(sandbox, target, tmp_path)
    try:
        for name in TABLES:
            mine, theirs = _table(db, name), _table(fresh_db, name)
            a = {r[:3]: dict(r) for r in mine}
            b = {r[:3]: dict(r) for r in theirs}
            diff = [
                (k, {c: (a[k].get(c), b[k].get(c)) for c in a[k] if a[k].get(c) != b[k].get(c)})
                for k in a.keys() & b.keys()
                if a[k] != b[k]
            ][:3]
            assert mine == theirs, (name, diff, len(a.keys() ^ b.keys()))
    finally:
        _drop(fresh_db, fresh)
    assert _history(db) == history_before
    with db.connect() as conn:
        assert set(
            conn.execute(sa.text("SELECT DISTINCT normalize_version FROM order_history")).scalars()
        ) == {2}
    # a second rebuild has nothing to do
    with SyncEngine(settings, db=db) as engine:
        assert engine.rebuild().total("orders_read") == 0
        assert engine.rebuild(all_rows=True).table_total("orders").updated == 0
    db.dispose()


def test_rebuild_survives_sigkill(sandbox: SandboxServer, target: Any, tmp_path: Path) -> None:
    """A rebuild killed between batches resumes; the dead run is marked abandoned; no request."""
    db = _sync_with_history(sandbox, target)
    history_before = _history(db)
    _corrupt(db)
    # No API at all: a base URL nothing listens on and no token.
    env = cli_env(None, target, RC_SYNC_BATCH_ORDERS="40", READYCLOUD_BASE_URL="http://127.0.0.1:9")
    env["PYTHONPATH"] = str(RELIABILITY)
    requests = sandbox.stats.snapshot()["requests"]
    for spec in ("rebuild_commit:2", "rebuild_in_tx:2"):
        proc = subprocess.run(
            [sys.executable, "-m", "crash_runner", "rebuild"],
            env={**env, "RC_SYNC_TEST_CRASH": spec},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert proc.returncode == -signal.SIGKILL, (spec, proc.stderr[-2000:])
    stale = sum(r.stale_orders for r in state.status(db))
    total = sum(r.row_counts["orders"] for r in state.status(db))
    assert 0 < stale < total  # the first kill left committed batches, the second none
    with db.connect() as conn:
        runs = dict(
            conn.execute(sa.text("SELECT id, status FROM sync_runs WHERE kind = 'rebuild'")).all()
        )
    # the second killed run noticed the first one dead when it took the org's lock
    assert sorted(runs.values()) == ["abandoned", "running"]
    running = [i for i, st in runs.items() if st == "running"]

    proc = run_cli(["rebuild"], env, tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert sandbox.stats.snapshot()["requests"] == requests
    with db.connect() as conn:
        statuses = dict(conn.execute(sa.text("SELECT id, status FROM sync_runs")).all())
        finished = (
            conn.execute(sa.text("SELECT finished_at FROM sync_runs WHERE status = 'abandoned'"))
            .scalars()
            .all()
        )
    assert all(statuses[i] == "abandoned" for i in running)
    assert all(f is not None for f in finished)
    assert sum(r.stale_orders for r in state.status(db)) == 0

    fresh_db, fresh = _fresh(sandbox, target, tmp_path)
    try:
        for name in TABLES:
            assert _table(db, name) == _table(fresh_db, name), name
    finally:
        _drop(fresh_db, fresh)
    assert _history(db) == history_before
    status = run_cli(["status"], env, tmp_path)
    assert "rc-sync rebuild" not in status.stdout
    db.dispose()
