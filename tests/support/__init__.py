"""Test helpers shared across folders: compare a warehouse with the sandbox, column by column."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

KEYS: dict[str, tuple[str, ...]] = {
    "orders": ("org_pk", "order_pk"),
    "boxes": ("org_pk", "order_pk", "box_pk"),
    "items": ("org_pk", "order_pk", "box_pk", "item_pk"),
    "addresses": ("org_pk", "order_pk", "role"),
}


def warehouse_engine(target: Any) -> sa.Engine:
    """A SQLAlchemy engine on a test WarehouseTarget (search_path set on PostgreSQL)."""
    from warehouse.db import make_engine

    return make_engine(target.url, target.schema)


def fetch_rows(target: Any, table: str, *, live_only: bool = True) -> list[dict[str, Any]]:
    """All rows of one warehouse table; for child tables, only rows of non-deleted orders."""
    from warehouse import models

    engine = warehouse_engine(target)
    tbl = models.Base.metadata.tables[table]
    orders = models.Base.metadata.tables["orders"]
    query = sa.select(tbl)
    if live_only and table != "orders":
        query = query.join(
            orders, (orders.c.org_pk == tbl.c.org_pk) & (orders.c.order_pk == tbl.c.order_pk)
        ).where(orders.c.deleted_at.is_(None))
    elif live_only:
        query = query.where(orders.c.deleted_at.is_(None))
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]
    finally:
        engine.dispose()


def _norm(value: Any) -> Any:
    """Bring a value to a comparable form (numbers as floats, JSON text parsed, datetimes UTC)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float | Decimal):
        return float(value)
    if isinstance(value, datetime):
        assert value.tzinfo is not None, f"naive datetime in the warehouse: {value!r}"
        return value.timestamp()
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _same(a: Any, b: Any) -> bool:
    a, b = _norm(a), _norm(b)
    if isinstance(a, str) != isinstance(b, str) and None not in (a, b):
        # opaque identifiers such as order_number: the API sends numbers, the warehouse keeps text
        return str(a) == (str(int(b)) if isinstance(b, float) and b.is_integer() else str(b))
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)
    return bool(a == b)


def diff_table(
    actual: Iterable[Mapping[str, Any]],
    expected: Iterable[Mapping[str, Any]],
    table: str,
    *,
    orgs: set[str] | None = None,
) -> list[str]:
    """Differences between warehouse rows and expected rows, on the expected rows' columns."""
    key_cols = KEYS[table]
    act = {tuple(r[k] for k in key_cols): r for r in actual if orgs is None or r["org_pk"] in orgs}
    exp = {
        tuple(r[k] for k in key_cols): r for r in expected if orgs is None or r["org_pk"] in orgs
    }
    problems: list[str] = []
    for key in sorted(exp.keys() - act.keys())[:5]:
        problems.append(f"{table}: missing row {key}")
    for key in sorted(act.keys() - exp.keys())[:5]:
        problems.append(f"{table}: unexpected row {key}")
    for key in sorted(exp.keys() & act.keys()):
        for col, want in exp[key].items():
            got = act[key].get(col, "<no such column>")
            if not _same(got, want):
                problems.append(f"{table} {key}.{col}: warehouse {got!r} != source {want!r}")
                if len(problems) > 20:
                    return problems
    if len(exp) != len(act):
        problems.append(f"{table}: {len(act)} rows in the warehouse, {len(exp)} at the source")
    return problems


def assert_warehouse_matches(
    target: Any,
    expected: Mapping[str, list[dict[str, Any]]],
    *,
    orgs: Iterable[str] | None = None,
    tables: Iterable[str] = ("orders", "boxes", "items", "addresses"),
) -> None:
    """Fail with a readable diff unless every table equals the expected rows, column by column."""
    org_set = set(orgs) if orgs is not None else None
    problems: list[str] = []
    for table in tables:
        problems += diff_table(fetch_rows(target, table), expected[table], table, orgs=org_set)
    assert not problems, "warehouse differs from the source:\n  " + "\n  ".join(problems[:40])


def assert_no_duplicate_keys(target: Any) -> None:
    """Every table's contract key is unique (the primary keys should guarantee it)."""
    engine = warehouse_engine(target)
    try:
        with engine.connect() as conn:
            for table, cols in KEYS.items():
                key = ", ".join(cols)
                dupes = conn.execute(
                    sa.text(
                        f"SELECT {key}, count(*) FROM {table} GROUP BY {key} HAVING count(*) > 1"
                    )
                ).fetchall()
                assert not dupes, f"duplicate keys in {table}: {dupes[:5]}"
    finally:
        engine.dispose()


# -- running the engine and the command line against a sandbox ---------------------------------


def make_settings(server: Any, target: Any, **more: Any) -> Any:
    """Settings for a sync from `server` into `target`, with small pages to exercise paging."""
    from rc_sync.settings import load_settings

    return load_settings(
        readycloud_base_url=server.base_url,
        readycloud_api_token=server.token,
        warehouse_url=target.url,
        warehouse_schema=target.schema,
        page_size=more.pop("page_size", 25),
        batch_orders=more.pop("batch_orders", 60),
        rate_limit=more.pop("rate_limit", "off"),
        **more,
    )


def cli_env(server: Any, target: Any, **extra: str) -> dict[str, str]:
    """Environment for running `rc-sync` as a child process against the sandbox."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("READYCLOUD_", "WAREHOUSE_", "RC_SYNC_"))
    }
    if server is not None:
        env["READYCLOUD_BASE_URL"] = server.base_url
        env["READYCLOUD_API_TOKEN"] = server.token
    env["WAREHOUSE_URL"] = target.url
    env["WAREHOUSE_SCHEMA"] = target.schema
    env["RC_SYNC_PAGE_SIZE"] = "50"
    env["READYCLOUD_RATE_LIMIT"] = "off"  # tests that throttle say so
    env.update(extra)
    return env


def run_cli(
    args: list[str], env: dict[str, str], cwd: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run `rc-sync ARGS` as a user would, capturing output."""
    return subprocess.run(
        [sys.executable, "-m", "rc_sync.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# The time at which pinned sandbox stores are read: after all their generated data.
PINNED_AT = datetime(2026, 1, 1, tzinfo=UTC)


def pinned_org_docs(orders: int, seed: int, poison_rate: float = 0.0) -> tuple[str, list[Any]]:
    """(org_pk, documents) of a one-org sandbox store whose data and clock are pinned."""
    from rc_sandbox import SandboxConfig, SandboxStore

    store = SandboxStore(
        SandboxConfig(
            orgs=1,
            orders=orders,
            seed=seed,
            poison_rate=poison_rate,
            data_until=datetime(2025, 12, 1, tzinfo=UTC),
        ),
        clock=lambda: PINNED_AT,
    )
    org = store.org_pks()[0]
    return org, store.orders_json(org)
