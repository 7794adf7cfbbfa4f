"""Scenario 5: crash anywhere. `rc-sync sync` runs as a subprocess and is SIGKILLed at many
points; after every kill the warehouse holds only whole batches (every stored order exactly
as at the source, children included), no duplicate keys, and a watermark that is never ahead
of the data; a final rerun gives the source exactly.

Points (each a separate kill, chained so that together they cover the run from its first
page to its last commit): between pages (hook after the n-th page, and from outside at a
given count of requests served), inside a load transaction after its rows were written,
inside the watermark update, right after a commit (hook, and from outside when rows appear).
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest
from reliability_support import (
    RC_SYNC,
    Harness,
    assert_exact,
    assert_watermark_not_ahead,
    python_cli,
    watermark,
)
from support import assert_no_duplicate_keys, diff_table, fetch_rows
from support.expected import expected_rows

pytestmark = pytest.mark.reliability

# (label, hook spec or None for an outside kill, outside trigger)
HOOK_POINTS: list[str] = [
    "page:2",  # first pages of a first (full) run: nothing committed yet
    "in_tx:1",  # first batch written but not committed
    "after_commit:1",  # first batch committed, killed immediately after
    "page:4",
    "in_watermark:1",  # rows and watermark written, transaction not committed
    "after_commit:2",
    "in_tx:2",
    "page:7",
    "after_commit:1",
]


def assert_whole_batches(target: Any, server: Any) -> None:
    """Every order in the warehouse is exactly its source state, children included."""
    expected = expected_rows(server.store)
    present = {(r["org_pk"], r["order_pk"]) for r in fetch_rows(target, "orders")}
    problems: list[str] = []
    for table, rows in expected.items():
        want = [r for r in rows if (r["org_pk"], r["order_pk"]) in present]
        got = [r for r in fetch_rows(target, table) if (r["org_pk"], r["order_pk"]) in present]
        problems += diff_table(got, want, table)
    assert not problems, "a crash left a half-applied batch:\n  " + "\n  ".join(problems[:20])


def check_after_crash(target: Any, server: Any) -> None:
    assert_no_duplicate_keys(target)
    assert_whole_batches(target, server)
    assert_watermark_not_ahead(target, server)


def _kill_when(
    harness: Harness, env: dict[str, str], condition: Callable[[], bool], timeout: float = 60
) -> int:
    """Start the real `rc-sync sync`, SIGKILL it as soon as `condition()` holds; its exit code."""
    proc = subprocess.Popen(
        [str(RC_SYNC), "sync"],
        env=env,
        cwd=harness.tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if condition():
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.002)
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    harness.texts += [out, err]
    return proc.returncode


def _order_count(target: Any) -> int:
    try:
        return len(fetch_rows(target, "orders"))
    except Exception:  # the table may be mid-creation
        return 0


def run_crash_chain(
    harness: Harness, target: Any, *, orders: int, hooks: list[str], outside: tuple[int, ...]
) -> int:
    """Kill `rc-sync sync` at every point (chained), check after each, rerun; kills done."""
    server = harness.sandbox(orders=orders, seed=31, tie_fraction=0.3, poison_rate=0.03)
    orgs = server.store.org_pks()
    harness.migrate(server, target)
    env = harness.env(server, target, RC_SYNC_PAGE_SIZE="20", RC_SYNC_BATCH_ORDERS="20")
    kills = 0

    # Outside kills of the real binary, at a count of requests served (between/during pages).
    for requests in outside:
        server.stats.reset()
        code = _kill_when(harness, env, lambda n=requests: server.stats.requests >= n)
        assert code == -signal.SIGKILL, f"the run ended on its own before {requests} requests"
        kills += 1
        check_after_crash(target, server)

    # Hooked kills at exact points inside the run (chained: each run resumes the last).
    for spec in hooks:
        before = [watermark(target, org) for org in orgs]
        proc = subprocess.run(
            python_cli(["sync"]),
            env={**env, "RC_SYNC_TEST_CRASH": spec},
            cwd=harness.tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        harness.texts += [proc.stdout, proc.stderr]
        assert proc.returncode == -signal.SIGKILL, (spec, proc.returncode, proc.stderr[-2000:])
        kills += 1
        check_after_crash(target, server)
        after = [watermark(target, org) for org in orgs]
        for old, new in zip(before, after, strict=True):
            assert old is None or (new is not None and new >= old), "a watermark went backwards"

    # Outside kill as soon as new rows appear (right after a commit, seen from outside).
    start = _order_count(target)
    code = _kill_when(harness, env, lambda: _order_count(target) > start)
    assert code in (-signal.SIGKILL, 0)
    kills += 1
    check_after_crash(target, server)

    proc = harness.run_cli(["sync"], env)
    assert proc.returncode == 0, proc.stderr
    assert_exact(target, server)
    return kills


def test_sigkill_anywhere_then_rerun(harness: Harness, target) -> None:
    """12 kills spread over the run (2 outside by request count, 9 hooked, 1 outside on rows)."""
    kills = run_crash_chain(harness, target, orders=200, hooks=HOOK_POINTS, outside=(6, 14))
    assert kills >= 10


@pytest.mark.slow
def test_sigkill_anywhere_long(harness: Harness, target) -> None:
    """Long variant: every point on both databases, 600 orders."""
    kills = run_crash_chain(harness, target, orders=600, hooks=HOOK_POINTS * 2, outside=(4, 9, 17))
    assert kills >= 20
