"""Issue 11 defects 4, 5, 7 and 8: status layout, Ctrl-C, mistyped orgs, no litter."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from support import cli_env, make_settings, run_cli, warehouse_engine

from rc_sandbox import SandboxConfig, SandboxServer

_TABLE_CHARS = set("┏┃━│└┡╇")


def _state_orgs(target: Any) -> set[str]:
    """The org pks that have a sync_state row."""
    engine = warehouse_engine(target)
    try:
        with engine.connect() as conn:
            return set(conn.execute(sa.text("SELECT org_pk FROM sync_state")).scalars())
    finally:
        engine.dispose()


def _run_on_terminal(args: list[str], env: dict[str, str], cwd: Path, columns: int) -> str:
    """Run `rc-sync ARGS` with stdout and stderr on a pseudo-terminal `columns` wide."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {k: v for k, v in env.items() if k not in ("COLUMNS", "LINES")}
    env["TERM"] = "xterm"
    proc = subprocess.Popen(
        [sys.executable, "-m", "rc_sync.cli", *args],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=60)
    os.close(leader)
    text = b"".join(chunks).decode("utf-8", "replace")
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text).replace("\r", "")


def test_status_fits_80_columns_on_a_terminal(
    sandbox: SandboxServer, target, tmp_path: Path
) -> None:
    """On an 80-column terminal every status line fits, nothing is truncated with '…'."""
    env = cli_env(sandbox, target)
    assert run_cli(["migrate"], env, tmp_path).returncode == 0
    assert run_cli(["sync"], env, tmp_path).returncode == 0
    out = _run_on_terminal(["status"], env, tmp_path, 80)
    lines = [line for line in out.splitlines() if line.strip()]
    assert lines, out
    assert all(len(line) <= 80 for line in lines), "\n".join(lines)
    assert "…" not in out
    for org in sandbox.store.org_pks():
        assert f"org {org}" in out
    assert "watermark" in out and "open issues" in out and "API budget" in out


def test_status_in_a_pipe_is_plain_and_whole(
    sandbox: SandboxServer, target, tmp_path: Path
) -> None:
    """Not on a terminal: plain lines (no table borders), org pks and commands whole."""
    env = cli_env(sandbox, target)
    assert run_cli(["migrate"], env, tmp_path).returncode == 0
    assert run_cli(["sync"], env, tmp_path).returncode == 0
    engine = warehouse_engine(target)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE orders SET normalize_version = 0"))
    engine.dispose()
    result = run_cli(["status"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert not _TABLE_CHARS & set(result.stdout)
    assert "…" not in result.stdout
    assert "run `rc-sync rebuild` to re-derive" in result.stdout  # the warning is kept, whole
    for org in sandbox.store.org_pks():
        assert f"org {org}\n" in result.stdout
    wide = run_cli(["status", "--wide"], env, tmp_path)
    assert wide.returncode == 0 and "open issues" in wide.stdout and "…" not in wide.stdout


def test_status_orgs_filters(sandbox: SandboxServer, sqlite_target, tmp_path: Path) -> None:
    """`status --orgs X` and the global `--orgs X` show org X only (JSON and text)."""
    env = cli_env(sandbox, sqlite_target)
    assert run_cli(["sync"], env, tmp_path).returncode == 0
    first, second = sandbox.store.org_pks()[:2]
    for args in (["status", "--orgs", first], ["--orgs", first, "status"]):
        text = run_cli(args, env, tmp_path)
        assert text.returncode == 0, text.stderr
        assert f"org {first}" in text.stdout and f"org {second}" not in text.stdout
        data = run_cli([*args, "--json"], env, tmp_path)
        assert [row["org_pk"] for row in __import__("json").loads(data.stdout)] == [first]


def test_mistyped_org_persists_nothing(sandbox: SandboxServer, target, tmp_path: Path) -> None:
    """`--orgs NOPE123`: exit 2, no sync_state row, status does not list it."""
    env = cli_env(sandbox, target)
    assert run_cli(["migrate"], env, tmp_path).returncode == 0
    result = run_cli(["--orgs", "NOPE123", "sync"], env, tmp_path)
    assert result.returncode == 2, result.stderr
    assert "NOPE123" not in _state_orgs(target)
    assert "NOPE123" not in run_cli(["status", "--json"], env, tmp_path).stdout
    # An org that did load keeps its state when a later run of it is refused.
    good = sandbox.store.org_pks()[0]
    assert run_cli(["--orgs", good, "sync"], env, tmp_path).returncode == 0
    assert good in _state_orgs(target)


def test_no_lock_files_are_left_next_to_the_database(
    sandbox: SandboxServer, sqlite_target, tmp_path: Path
) -> None:
    """After sync and reconcile the SQLite folder holds the database only (no <db>.<org>.lock)."""
    env = cli_env(sandbox, sqlite_target)
    assert run_cli(["sync"], env, tmp_path).returncode == 0
    assert run_cli(["reconcile"], env, tmp_path).returncode == 0
    folder = Path(sqlite_target.url.removeprefix("sqlite:///")).parent
    assert not list(folder.glob("*.lock"))


def test_ctrl_c_is_quiet_and_exits_130(sqlite_target, tmp_path: Path) -> None:
    """SIGINT in the middle of a sync: exit 130, and nothing (no retry warnings) after the
    'interrupted' sentence."""
    config = SandboxConfig(orgs=1, orders=3000, seed=3, latency_ms=150)
    with SandboxServer(config) as server:
        env = cli_env(server, sqlite_target, RC_SYNC_PAGE_SIZE="20", RC_SYNC_CONCURRENCY="4")
        proc = subprocess.Popen(
            [sys.executable, "-m", "rc_sync.cli", "sync"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and server.stats.snapshot()["requests"] < 12:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    after = err[err.index("interrupted") :].splitlines()[1:]
    assert not [line for line in after if line.strip()], err
    assert "Errno" not in err and "retry" not in err.lower(), err


class _Recorder:
    """A ProgressSink that records every advance."""

    def __init__(self) -> None:
        self.steps: list[int] = []

    def start_org(self, org_pk: str, description: str, total: int | None) -> None:
        """Ignore."""

    def set_total(self, total: int | None) -> None:
        """Ignore."""

    def advance(self, orders: int) -> None:
        """Record."""
        self.steps.append(orders)

    def finish_org(self, summary: str) -> None:
        """Ignore."""

    def waiting(self, seconds: float, reason: str) -> None:
        """Ignore."""

    def set_pace(self, orders_per_s: float | None) -> None:
        """Ignore."""

    def close(self) -> None:
        """Ignore."""


def test_progress_advances_per_page(sandbox: SandboxServer, sqlite_target: Any) -> None:
    """The bar moves by at most one page at a time, not by a whole load batch."""
    from rc_sync.engine import SyncEngine

    settings = make_settings(sandbox, sqlite_target, page_size=25, batch_orders=1000)
    recorder = _Recorder()
    with SyncEngine(settings, progress=recorder) as engine:
        report = engine.sync_incremental()
    assert sum(recorder.steps) == report.total("orders_read") == 300
    assert max(recorder.steps) <= 25
