"""Helpers of the Dagster tests: clean environments, sandbox shape, sample days, resources."""

from __future__ import annotations

import os
import socket
import sys
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from support.expected import expected_rows

REPO = Path(__file__).resolve().parents[2]
SANDBOX_ORDERS = 600
SANDBOX_SEED = 1
SANDBOX_ORGS = 2
# Tests that depend on fixed data pin the end of the generated data (the default is now).
SANDBOX_DATA_UNTIL = "2025-01-01"

# Variables that would point the code location at something other than the test's own setup.
ENV_VARS = (
    "READYCLOUD_BASE_URL",
    "READYCLOUD_API_TOKEN",
    "READYCLOUD_ORGS",
    "WAREHOUSE_URL",
    "WAREHOUSE_SCHEMA",
    "RC_SANDBOX",
    "RC_SANDBOX_PORT",
    "RC_SANDBOX_ORDERS",
    "RC_SANDBOX_DATA_UNTIL",
    "RC_SANDBOX_WAREHOUSE_URL",
    "RC_SYNC_START_DATE",
    "RC_SYNC_REFRESH_CRON",
    "RC_SYNC_RECONCILE_CRON",
    "RC_SYNC_SCHEDULES_ON",
    "RC_SYNC_FRESHNESS_LIMIT_MINUTES",
    "DAGSTER_HOME",
)


def clean_environ(**extra: str) -> dict[str, str]:
    """os.environ without the rc-sync variables, plus `extra` (for subprocesses)."""
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    env.update(extra)
    return env


def dagster_cli_env(home: Path, server: Any, target: Any, **extra: str) -> dict[str, str]:
    """A clean environment for a `dagster` command: its own DAGSTER_HOME, sandbox, warehouse."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return clean_environ(
        DAGSTER_HOME=str(home),
        READYCLOUD_BASE_URL=str(server.base_url),
        READYCLOUD_API_TOKEN=str(server.token),
        WAREHOUSE_URL=target.url,
        WAREHOUSE_SCHEMA=target.schema,
        **extra,
    )


def materialize_command(select: str, partition_range: str) -> list[str]:
    """`dagster asset materialize --partition-range` of the code location, as a user types it."""
    return [
        str(Path(sys.executable).parent / "dagster"),
        "asset",
        "materialize",
        "-m",
        "pipelines.definitions",
        "--select",
        select,
        "--partition-range",
        partition_range,
    ]


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sandbox_config(**overrides: Any) -> Any:
    """The sandbox shape the Dagster tests use (sandbox mode builds the same with these knobs)."""
    from rc_sandbox import SandboxConfig

    values: dict[str, Any] = {
        "orgs": SANDBOX_ORGS,
        "orders": SANDBOX_ORDERS,
        "seed": SANDBOX_SEED,
        "data_until": date.fromisoformat(SANDBOX_DATA_UNTIL),
    }
    values.update(overrides)
    return SandboxConfig(**values)


def busiest_days(server: Any, n: int = 1) -> list[date]:
    """The `n` UTC days with the most orders in the sandbox (by nested_updated_at)."""
    orders = expected_rows(server.store)["orders"]
    days = Counter(_as_dt(o["nested_updated_at"]).date() for o in orders)
    return [d for d, _ in days.most_common(n)]


def _as_dt(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(UTC)


def window(first: date, last: date) -> tuple[datetime, datetime]:
    """[first 00:00 UTC, last + 1 day 00:00 UTC)."""
    since = datetime(first.year, first.month, first.day, tzinfo=UTC)
    return since, datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1)


def resources_for(server: Any, target: Any) -> dict[str, Any]:
    """The resource pointed at a sandbox and a test warehouse (migrated on first use)."""
    from pipelines.resources import RcSyncResource

    return {
        "rc_sync": RcSyncResource(
            base_url=server.base_url,
            api_token=server.token,
            warehouse_url=target.url,
            warehouse_schema=target.schema,
            auto_migrate=True,
        )
    }


def expected_per_day(expected: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, int]]:
    """Rows per table per UTC day of their order's nested_updated_at, from expected rows."""
    day_of = {
        (o["org_pk"], o["order_pk"]): _as_dt(o["nested_updated_at"]).date().isoformat()
        for o in expected["orders"]
    }
    out: dict[str, dict[str, int]] = {}
    for table, rows in expected.items():
        for row in rows:
            day = day_of[(row["org_pk"], row["order_pk"])]
            counts = out.setdefault(
                day, dict.fromkeys(("orders", "boxes", "items", "addresses"), 0)
            )
            counts[table] += 1
    return out


def assert_matches_sandbox(target: Any, expected: dict[str, list[dict[str, Any]]]) -> None:
    """Every table equals the sandbox's expected rows, column by column (support.py)."""
    from support import assert_warehouse_matches

    assert_warehouse_matches(target, expected)
