"""`dagster asset materialize --partition-range` as a user runs it, in a subprocess."""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

from pipelines_support import (
    REPO,
    assert_matches_sandbox,
    busiest_days,
    dagster_cli_env,
    materialize_command,
    window,
)
from support.expected import expected_rows


def _materialize(
    select: str, partition_range: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        materialize_command(select, partition_range),
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_partition_range_from_the_command_line(sandbox: Any, target: Any, tmp_path: Path) -> None:
    """The tables, views and checks for a 3-day range in one run; tables equal the sandbox's."""
    (day,) = busiest_days(sandbox)
    first, last = day - timedelta(days=1), day + timedelta(days=1)
    # Load batches of 2 orders: full batches even on these few days, so a normalization
    # worker is forked from Dagster's step process and does the normalizing (checked by hand
    # once: the pool starts in the step process; the tables must equal the sandbox's).
    env = dagster_cli_env(
        tmp_path / "dagster_home",
        sandbox,
        target,
        RC_SYNC_BATCH_ORDERS="2",
        RC_SYNC_NORMALIZE_WORKERS="1",
    )
    if target.dialect == "postgresql":
        from warehouse.db import make_engine
        from warehouse.migrate import upgrade

        engine = make_engine(target.url, target.schema)
        upgrade(engine)  # a shared warehouse is migrated on purpose (`rc-sync migrate`)
        engine.dispose()
    out = _materialize("key:readycloud/*", f"{first}...{last}", env)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-4000:]
    assert "RUN_SUCCESS" in log
    assert sandbox.token not in log  # the token never reaches the logs
    since, until = window(first, last)
    assert_matches_sandbox(target, expected_rows(sandbox.store, since=since, until=until))
