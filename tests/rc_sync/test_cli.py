"""The `rc-sync` command line, run as a user runs it: a child process with environment variables."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from support import assert_warehouse_matches, cli_env, fetch_rows, run_cli, warehouse_engine
from support.expected import expected_rows

from rc_sandbox import SandboxServer


def test_sync_status_and_exit_zero(sandbox: SandboxServer, target, tmp_path: Path) -> None:
    """migrate + sync + status work end to end and print a summary."""
    env = cli_env(sandbox, target)
    migrated = run_cli(["migrate"], env, tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    result = run_cli(["sync"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "300 orders read" in result.stdout
    assert_warehouse_matches(target, expected_rows(sandbox.store))
    status = run_cli(["status", "--json"], env, tmp_path)
    assert status.returncode == 0, status.stderr
    for org in sandbox.store.org_pks():
        assert org in status.stdout
    again = run_cli(["sync", "--json"], env, tmp_path)
    assert again.returncode == 0, again.stderr
    assert '"orders_new": 0' in again.stdout


def test_backfill_flags(sandbox: SandboxServer, sqlite_target, tmp_path: Path) -> None:
    """--since/--until take dates; bad combinations and bad dates exit 2 with a message."""
    env = cli_env(sandbox, sqlite_target)
    ok = run_cli(
        ["sync", "--since", "2020-01-01", "--until", "2030-01-01T00:00:00Z"], env, tmp_path
    )
    assert ok.returncode == 0, ok.stderr
    assert len(fetch_rows(sqlite_target, "orders")) == 300
    bad = run_cli(["sync", "--since", "yesterday-ish"], env, tmp_path)
    assert bad.returncode == 2 and "--since" in bad.stderr and "Traceback" not in bad.stderr
    mixed = run_cli(["sync", "--full-refresh", "--since", "2024-01-01"], env, tmp_path)
    assert mixed.returncode == 2
    until_only = run_cli(["sync", "--until", "2024-01-01"], env, tmp_path)
    assert until_only.returncode == 2


def test_bad_token_exits_2_and_writes_nothing(
    sandbox: SandboxServer, sqlite_target, tmp_path: Path
) -> None:
    """A wrong token: exit 2, one clear sentence, no rows, the token nowhere in the output."""
    secret = "not-the-right-token-5f3a9c"
    env = cli_env(sandbox, sqlite_target, READYCLOUD_API_TOKEN=secret)
    result = run_cli(["sync"], env, tmp_path)
    assert result.returncode == 2
    assert "token" in result.stderr.lower() and "READYCLOUD_API_TOKEN" in result.stderr
    assert "Traceback" not in result.stderr
    assert secret not in result.stdout + result.stderr
    db_file = Path(sqlite_target.url.removeprefix("sqlite:///"))
    if db_file.exists():
        engine = warehouse_engine(sqlite_target)
        with engine.connect() as conn:
            tables = sa.inspect(conn).get_table_names()
            if "orders" in tables:
                assert conn.execute(sa.text("SELECT count(*) FROM orders")).scalar() == 0
        engine.dispose()


def test_missing_token_and_unreachable_api_exit_2(sqlite_target, tmp_path: Path) -> None:
    """No token, or nothing listening at the base URL: exit 2 with what to fix."""
    env = cli_env(None, sqlite_target)
    missing = run_cli(["sync"], env, tmp_path)
    assert missing.returncode == 2
    assert "READYCLOUD_API_TOKEN is not set" in missing.stderr
    env.update(READYCLOUD_API_TOKEN="abc123abc123", READYCLOUD_BASE_URL="http://127.0.0.1:9")
    down = run_cli(["sync"], env, tmp_path)
    assert down.returncode == 2, down.stderr
    assert "READYCLOUD_BASE_URL" in down.stderr and "Traceback" not in down.stderr
    env.update(READYCLOUD_BASE_URL="http://readycloud.example.com")
    plain = run_cli(["sync"], env, tmp_path)
    assert plain.returncode == 2 and "https" in plain.stderr


@pytest.mark.postgres
def test_unmigrated_postgres_is_refused(sandbox: SandboxServer, pg_target, tmp_path: Path) -> None:
    """A shared warehouse is never migrated implicitly: the message names `rc-sync migrate`."""
    result = run_cli(["sync"], cli_env(sandbox, pg_target), tmp_path)
    assert result.returncode == 2
    assert "rc-sync migrate" in result.stderr


def test_bad_warehouse_url_exits_2(sandbox: SandboxServer, tmp_path: Path) -> None:
    """An unreachable warehouse: exit 2 and a sentence about WAREHOUSE_URL."""

    class Target:
        url = "postgresql+psycopg://nobody@127.0.0.1:9/none"
        schema = "readycloud"

    result = run_cli(["migrate"], cli_env(sandbox, Target()), tmp_path)
    assert result.returncode == 2
    assert "WAREHOUSE_URL" in result.stderr and "Traceback" not in result.stderr


def test_demo_on_a_fresh_directory(tmp_path: Path) -> None:
    """`rc-sync demo` fills ./readycloud.db and prints real rows, well under a minute."""
    env = {
        k: v
        for k, v in cli_env(None, type("T", (), {"url": "", "schema": "x"})()).items()
        if not k.startswith("WAREHOUSE_")
    }
    started = time.monotonic()
    result = run_cli(["demo", "--orders", "200"], env, tmp_path, timeout=120)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "readycloud.db").exists()
    assert "order_lines" in result.stdout and "200 orders read" in result.stdout
    assert elapsed < 60
    again = run_cli(["demo", "--orders", "200"], env, tmp_path, timeout=120)
    assert again.returncode == 0, again.stderr
    # Issue 11: no litter next to the database, nothing truncated, commands on one line.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["readycloud.db"]
    assert "…" not in result.stdout
    assert "RC_SANDBOX=1 dg dev (README" in result.stdout
    assert "export WAREHOUSE_URL=postgresql://user@host/db, then `rc-sync migrate`" in result.stdout


def test_sandbox_command_serves_until_interrupted(tmp_path: Path) -> None:
    """`rc-sync sandbox` prints its base URL and token and answers API requests."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rc_sync.cli",
            "sandbox",
            "--port",
            "0",
            "--orders",
            "40",
            "--token",
            "tok-xyz",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.match(r"READYCLOUD_BASE_URL=(\S+)", line)
        assert match, line
        assert proc.stdout.readline().strip() == "READYCLOUD_API_TOKEN=tok-xyz"
        response = httpx.get(
            f"{match.group(1)}/api/v2/orgs/", headers={"Authorization": "Bearer tok-xyz"}
        )
        assert response.status_code == 200 and response.json()["count"] == 2
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
    assert proc.returncode == 0
