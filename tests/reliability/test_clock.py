"""Hardening: windows and watermarks come from the server's time, so a client clock a day
ahead or behind changes nothing (issue 15, defect 1). The command line runs under `faketime`
(Debian package `faketime`, installed by .ci/run); the sandbox runs here with the true time."""

from __future__ import annotations

import random
import shutil
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa
from reliability_support import RC_SYNC, Harness, assert_exact, watermark
from support import warehouse_engine

from rc_common.timefmt import utc_now

pytestmark = pytest.mark.reliability

FAKETIME = shutil.which("faketime")
needs_faketime = pytest.mark.skipif(
    FAKETIME is None and not __import__("os").environ.get("RC_SYNC_REQUIRE_POSTGRES"),
    reason="needs faketime (apt-get install faketime)",
)


def _mutate(server, n: int, seed: int) -> None:
    """Change n orders and add one per org, then let the server's `Date` pass the changes.

    A run reads up to the server's time as its `Date` header tells it (one-second
    resolution, so up to a second behind); changes made within that second belong to the
    next run. The pause makes "the next run reads everything" exact.
    """
    rng = random.Random(seed)
    for _ in range(n):
        server.store.mutate_random(rng)
    for org in server.store.org_pks():
        server.store.create_order(org)  # a missed change is then also a missing row
    time.sleep(2.1)


def _sync_under(harness: Harness, offset: str | None, env: dict[str, str], command: str = "sync"):
    assert FAKETIME is not None, "faketime is required here (apt-get install faketime)"
    args = [str(RC_SYNC), command]
    command = [FAKETIME, "-f", offset, *args] if offset else args
    import subprocess

    proc = subprocess.run(
        command, env=env, cwd=harness.tmp_path, capture_output=True, text=True, timeout=180
    )
    harness.texts += [proc.stdout, proc.stderr]
    return proc


@needs_faketime
@pytest.mark.parametrize("offset", ["+1d", "-1d"])
def test_a_client_clock_off_by_a_day_changes_nothing(harness: Harness, target, offset: str) -> None:
    server = harness.sandbox(orders=300, seed=41)
    harness.migrate(server, target)
    env = harness.env(server, target)
    first = _sync_under(harness, offset, env)
    assert first.returncode == 0, first.stderr
    assert "clock" in first.stderr.lower(), "no warning about the skewed clock"
    _mutate(server, 30, seed=1)
    second = _sync_under(harness, offset, env)
    assert second.returncode == 0, second.stderr
    # (random mutations delete orders too: reconcile, under the same clock, marks them)
    assert _sync_under(harness, offset, env, "reconcile").returncode == 0
    assert_exact(target, server)  # nothing missed, nothing stale
    # the watermark is the server's time, not the client's
    for org in server.store.org_pks():
        mark = watermark(target, org)
        assert mark is not None and abs((mark - utc_now()).total_seconds()) < 600
    # back to the right clock: no jam, and later changes are read
    _mutate(server, 20, seed=2)
    third = _sync_under(harness, None, env)
    assert third.returncode == 0, third.stderr
    assert _sync_under(harness, None, env, "reconcile").returncode == 0
    assert_exact(target, server)


def test_a_watermark_left_ahead_of_the_server_does_not_jam_the_sync(
    harness: Harness, target
) -> None:
    """A watermark stored by an older rc-sync under a clock a day ahead: the next run warns,
    re-reads from the latest change it stored, and catches up (it used to fail with `empty
    window` for a day and then never read the changes in between)."""
    server = harness.sandbox(orders=120, seed=42)
    engine = harness.engine(server, target)
    engine.sync_incremental()
    ahead = utc_now() + timedelta(days=1)
    db = warehouse_engine(target)
    try:
        with db.begin() as conn:
            conn.execute(sa.text("UPDATE sync_state SET watermark = :w"), {"w": ahead})
    finally:
        db.dispose()
    _mutate(server, 15, seed=3)
    report = engine.sync_incremental()
    assert report.status == "success"
    engine.reconcile()  # random mutations delete orders too
    assert_exact(target, server)
    for org in server.store.org_pks():
        mark = watermark(target, org)
        assert mark is not None and mark < ahead - timedelta(hours=12)


def test_reset_watermark_reads_everything_again(harness: Harness, target) -> None:
    server = harness.sandbox(orders=80, seed=43)
    harness.migrate(server, target)
    env = harness.env(server, target)
    assert harness.run_cli(["sync"], env).returncode == 0
    db = warehouse_engine(target)
    try:
        with db.begin() as conn:  # an operator's accident: rows gone, watermark kept
            conn.execute(sa.text("DELETE FROM items"))
            conn.execute(sa.text("DELETE FROM boxes"))
            conn.execute(sa.text("DELETE FROM addresses"))
            conn.execute(sa.text("DELETE FROM load_issues"))
            conn.execute(sa.text("DELETE FROM orders"))
    finally:
        db.dispose()
    proc = harness.run_cli(["sync", "--reset-watermark"], env)
    assert proc.returncode == 0, proc.stderr
    assert_exact(target, server)
