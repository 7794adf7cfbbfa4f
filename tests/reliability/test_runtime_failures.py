"""Hardening: runtime failures are failed runs (exit 1) that say what happened; exit 2 stays
for configuration and credentials (issue 15, defect 5)."""

from __future__ import annotations

import sqlite3
import textwrap
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from reliability_support import Harness, assert_exact
from support import warehouse_engine

pytestmark = pytest.mark.reliability

# Loaded by the child `rc-sync` through PYTHONPATH: caps the SQLite file at a page count, the
# way a full disk stops SQLite ("database or disk is full"), without filling a real disk.
SITECUSTOMIZE = textwrap.dedent(
    """
    import os

    from sqlalchemy import event
    from sqlalchemy.pool import Pool

    PAGES = os.environ.get("RC_TEST_MAX_PAGES")


    @event.listens_for(Pool, "connect")
    def _cap_pages(dbapi_connection, _record):
        if PAGES and type(dbapi_connection).__module__.startswith("sqlite3"):
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA max_page_count = {int(PAGES)}")
            cursor.close()
    """
)


def _runs(target: Any) -> list[dict[str, Any]]:
    engine = warehouse_engine(target)
    try:
        with engine.connect() as conn:
            return [
                dict(r._mapping)
                for r in conn.execute(
                    sa.text("SELECT id, status, error FROM sync_runs ORDER BY id")
                )
            ]
    finally:
        engine.dispose()


def test_disk_full_exits_1_with_a_short_message_and_closes_the_run(
    harness: Harness, sqlite_target, tmp_path: Path
) -> None:
    server = harness.sandbox(orders=300, seed=5)
    harness.migrate(server, sqlite_target)
    engine = warehouse_engine(sqlite_target)
    with engine.connect() as conn:
        pages = int(conn.exec_driver_sql("PRAGMA page_count").scalar_one())
    engine.dispose()
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = harness.env(server, sqlite_target, RC_TEST_MAX_PAGES=str(pages + 12))
    env["PYTHONPATH"] = f"{hooks}:{env['PYTHONPATH']}"
    proc = harness.run_cli(["sync"], env)
    assert proc.returncode == 1, proc.stderr
    assert "disk full" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert '"nested_updated_at":' not in proc.stderr and "INSERT" not in proc.stderr
    assert len(proc.stderr) < 2000, f"{len(proc.stderr)} bytes of stderr"
    runs = _runs(sqlite_target)
    assert runs and runs[-1]["status"] == "failed", runs
    assert "disk full" in (runs[-1]["error"] or "")
    # with room again, the next run completes exactly
    del env["RC_TEST_MAX_PAGES"]
    again = harness.run_cli(["sync"], env)
    assert again.returncode == 0, again.stderr
    assert_exact(sqlite_target, server)


def test_locked_sqlite_exits_1_saying_it_is_locked(harness: Harness, sqlite_target) -> None:
    server = harness.sandbox(orders=40)
    harness.migrate(server, sqlite_target)
    holder = sqlite3.connect(sqlite_target.url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # another process writing, for a long time
        env = harness.env(server, sqlite_target, RC_SYNC_LOCK_TIMEOUT="1")
        proc = harness.run_cli(["sync"], env)
        holder.execute("ROLLBACK")
    finally:
        holder.close()
    assert proc.returncode == 1, proc.stderr
    assert "locked" in proc.stderr and "RC_SYNC_LOCK_TIMEOUT" in proc.stderr, proc.stderr
    assert "WAREHOUSE_URL" not in proc.stderr and "Traceback" not in proc.stderr


def test_unreachable_warehouse_at_start_stays_a_configuration_error(
    harness: Harness, sqlite_target, tmp_path: Path
) -> None:
    server = harness.sandbox(orders=10)
    env = harness.env(
        server, sqlite_target, WAREHOUSE_URL="postgresql+psycopg://nobody@127.0.0.1:1/x"
    )
    proc = harness.run_cli(["sync"], env)
    assert proc.returncode == 2 and "WAREHOUSE_URL" in proc.stderr, proc.stderr


@pytest.mark.postgres
def test_dropped_postgres_connection_is_retried(harness: Harness, pg_target) -> None:
    """The first write transaction of the run loses its connection (the server ends the
    session); the batch is retried on a new connection and the run completes exactly."""
    server = harness.sandbox(orders=120, seed=9)
    engine = harness.engine(server, pg_target, batch_orders=40)
    db = engine.db
    killed: list[int] = []
    admin = sa.create_engine(pg_target.url)

    def _kill_once(conn: sa.Connection, *_: Any) -> None:
        statement = _[1] if len(_) > 1 else ""
        if killed or "pg_advisory_xact_lock" not in str(statement):
            return
        pid = conn.connection.dbapi_connection.info.backend_pid  # type: ignore[union-attr]
        killed.append(pid)
        with admin.connect() as other:
            other.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})

    sa.event.listen(db, "before_cursor_execute", _kill_once)
    try:
        report = engine.sync_incremental()
    finally:
        sa.event.remove(db, "before_cursor_execute", _kill_once)
        admin.dispose()
    assert killed, "no write transaction was started"
    assert report.status == "success"
    assert_exact(pg_target, server)


def test_runtime_database_errors_are_failed_runs_not_configuration() -> None:
    """The command line's classification: disk full, lost connection, locked file -> exit 1
    with what happened; the statement and its parameters (order JSON) are never shown."""
    from rc_sync.errors import describe_failure

    params = {"raw": '{"url": "/api/v2/orgs/1/orders/2/", "nested_updated_at": "x"}' * 50}
    cases = {
        "database or disk is full": "disk full",
        'could not extend file "base/1/2": No space left on device': "disk full",
        "server closed the connection unexpectedly": "connection to the warehouse was lost",
        "database is locked": "locked",
    }
    for orig, expected in cases.items():
        exc = sa.exc.OperationalError("INSERT INTO orders VALUES (...)", params, Exception(orig))
        code, message = describe_failure(exc, warehouse_opened=True)
        assert code == 1 and expected in message, (orig, message)
        assert "nested_updated_at" not in message and "INSERT" not in message
    refused = sa.exc.OperationalError(None, None, Exception("connection refused"))
    code, message = describe_failure(refused, warehouse_opened=False)
    assert code == 2 and "WAREHOUSE_URL" in message
