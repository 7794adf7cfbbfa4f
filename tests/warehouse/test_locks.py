"""Per-org run locks: the second acquirer times out with a clear message; release works."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from warehouse.db import make_engine
from warehouse.locks import LockTimeout, org_run_lock


def test_second_acquirer_times_out(engine: Engine) -> None:
    with org_run_lock(engine, "7", timeout_s=1):
        started = time.monotonic()
        with (
            pytest.raises(LockTimeout, match="another rc-sync run for org 7 is in progress"),
            org_run_lock(engine, "7", timeout_s=0.3),
        ):
            pass
        assert time.monotonic() - started >= 0.25
        with org_run_lock(engine, "8", timeout_s=0):  # other orgs are independent
            pass
    with org_run_lock(engine, "7", timeout_s=0):  # released
        pass


def test_released_when_the_holder_dies(target: Any) -> None:
    code = textwrap.dedent(
        f"""
        import os, sys
        from warehouse.db import make_engine
        from warehouse.locks import org_run_lock
        engine = make_engine({target.url!r}, {target.schema!r})
        with org_run_lock(engine, "a/b c", timeout_s=5):
            print("locked", flush=True)
            sys.stdin.readline()
            os._exit(0)  # die while holding the lock
        """
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        engine = make_engine(target.url, target.schema)
        with (
            pytest.raises(LockTimeout, match="org a/b c"),
            org_run_lock(engine, "a/b c", timeout_s=0.2),
        ):
            pass
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(timeout=10)
        with org_run_lock(engine, "a/b c", timeout_s=5):
            pass
        engine.dispose()
    finally:
        holder.kill()


def test_in_memory_sqlite_lock() -> None:
    engine = make_engine("sqlite://")
    with (
        org_run_lock(engine, "7", timeout_s=0),
        pytest.raises(LockTimeout),
        org_run_lock(engine, "7", timeout_s=0.1),
    ):
        pass
    with org_run_lock(engine, "7", timeout_s=0):
        pass
