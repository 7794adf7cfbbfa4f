"""Helpers of the reliability suite: sandboxes, engines, subprocess runs and exact comparisons."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from support import assert_no_duplicate_keys, assert_warehouse_matches, fetch_rows, warehouse_engine
from support.expected import expected_issues, expected_rows

from rc_extract.client import ReadyCloudClient
from rc_sandbox import SandboxConfig, SandboxServer
from rc_sync.engine import SyncEngine
from rc_sync.settings import load_settings

REPO = Path(__file__).resolve().parents[2]
RC_SYNC = REPO / ".venv" / "bin" / "rc-sync"
PYTHON = REPO / ".venv" / "bin" / "python"
# Distinctive, so a leak anywhere is unambiguous.
TOKEN = "rel-SECRET-tok-9c1f3a77e0"
ENV_PREFIXES = ("READYCLOUD_", "WAREHOUSE_", "RC_SYNC_")


class FakeTime:
    """A clock and a sleep that never block: sleeping moves the clock forward."""

    def __init__(self) -> None:
        self.offset = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return time.monotonic() + self.offset

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.offset += max(0.0, seconds)


@dataclass
class Harness:
    """What one scenario started; `close()` stops it all."""

    tmp_path: Path
    servers: list[SandboxServer] = field(default_factory=list)
    engines: list[SyncEngine] = field(default_factory=list)
    clients: list[ReadyCloudClient] = field(default_factory=list)
    targets: list[Any] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)  # subprocess output, checked for the token

    def sandbox(self, **knobs: Any) -> SandboxServer:
        """A running sandbox with the suite's token (defaults: 2 orgs, 300 orders, no ties)."""
        knobs.setdefault("orders", 300)
        knobs.setdefault("orgs", 2)
        knobs.setdefault("token", TOKEN)
        server = SandboxServer(SandboxConfig(**knobs)).start()
        self.servers.append(server)
        return server

    def settings(self, server: SandboxServer, target: Any, **overrides: Any) -> Any:
        values: dict[str, Any] = {
            "readycloud_base_url": server.base_url,
            "readycloud_api_token": TOKEN,
            "warehouse_url": target.url,
            "warehouse_schema": target.schema,
            "page_size": 25,
            "concurrency": 3,
            "deadline_s": 30.0,
            "timeout_s": 10.0,
            "overlap_s": 600.0,
            "batch_orders": 50,
            "lock_timeout_s": 5.0,
            "rate_limit": "off",
        }
        values.update(overrides)
        return load_settings(**values)

    def engine(
        self,
        server: SandboxServer,
        target: Any,
        *,
        fake_time: FakeTime | None = None,
        **overrides: Any,
    ) -> SyncEngine:
        """A SyncEngine on the sandbox and the target (migrated; retries never really sleep)."""
        if target not in self.targets:
            self.targets.append(target)
        s = self.settings(server, target, **overrides)
        ft = fake_time or FakeTime()
        client = ReadyCloudClient(
            s.readycloud_base_url,
            TOKEN,
            timeout=s.timeout_s,
            page_size=s.page_size,
            concurrency=s.concurrency,
            deadline=s.deadline_s,
            sleep=ft.sleep,
            clock=ft.clock,
        )
        self.clients.append(client)
        engine = SyncEngine(s, client=client, auto_migrate=True)
        self.engines.append(engine)
        return engine

    def env(self, server: SandboxServer, target: Any, **extra: str) -> dict[str, str]:
        """Environment for an `rc-sync` subprocess on the sandbox and the target."""
        if target not in self.targets:
            self.targets.append(target)
        env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIXES)}
        env.update(
            {
                "READYCLOUD_BASE_URL": server.base_url,
                "READYCLOUD_API_TOKEN": TOKEN,
                "WAREHOUSE_URL": target.url,
                "WAREHOUSE_SCHEMA": target.schema,
                "READYCLOUD_RATE_LIMIT": "off",
                "RC_SYNC_PAGE_SIZE": "25",
                "RC_SYNC_BATCH_ORDERS": "50",
                "RC_SYNC_CONCURRENCY": "2",
                "RC_SYNC_DEADLINE": "30",
                "RC_SYNC_TIMEOUT": "10",
                "RC_SYNC_LOCK_TIMEOUT": "30",
                "PYTHONPATH": str(Path(__file__).resolve().parent),
                "COLUMNS": "200",
            }
        )
        env.update(extra)
        return env

    def run_cli(
        self, args: list[str], env: dict[str, str], timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run `rc-sync ARGS` to completion; its output is kept for the secret scan."""
        proc = subprocess.run(
            [str(RC_SYNC), *args],
            env=env,
            cwd=self.tmp_path,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        self.texts += [proc.stdout, proc.stderr]
        return proc

    def migrate(self, server: SandboxServer, target: Any) -> None:
        """Migrate the target (what an operator does once)."""
        proc = self.run_cli(["migrate"], self.env(server, target))
        assert proc.returncode == 0, proc.stderr

    def close(self) -> None:
        for engine in self.engines:
            engine.close()
        for client in self.clients:
            client.close()
        for server in self.servers:
            server.stop()

    # -- checks --------------------------------------------------------------------------

    def assert_token_absent(self, captured: str) -> None:
        """Scenario 10: the token is in no output, no log and no text column of any table."""
        for text in [captured, *self.texts]:
            assert TOKEN not in text, "the API token leaked into the output or the logs"
        for target in self.targets:
            hits = token_in_tables(target)
            assert not hits, f"the API token is stored in the warehouse: {hits[:5]}"


def token_in_tables(target: Any) -> list[str]:
    """`table.column` of every text-like column of every table that contains TOKEN."""
    engine = warehouse_engine(target)
    found: list[str] = []
    try:
        inspector = sa.inspect(engine)
        schema = target.schema if target.dialect == "postgresql" else None
        try:
            tables = inspector.get_table_names(schema=schema)
        except Exception:
            return found
        with engine.connect() as conn:
            for table in tables:
                for column in inspector.get_columns(table, schema=schema):
                    kind = str(column["type"]).upper()
                    if not any(t in kind for t in ("CHAR", "TEXT", "JSON", "CLOB")):
                        continue
                    name = column["name"]
                    cast = f'CAST("{name}" AS TEXT)'
                    hit = conn.execute(
                        sa.text(f'SELECT count(*) FROM "{table}" WHERE {cast} LIKE :pat'),
                        {"pat": f"%{TOKEN}%"},
                    ).scalar()
                    if hit:
                        found.append(f"{table}.{name}")
    finally:
        engine.dispose()
    return found


def assert_exact(target: Any, server: SandboxServer, *, issues: bool = True) -> None:
    """The warehouse equals the sandbox column by column; no duplicate keys; same load issues."""
    store = server.store
    assert_warehouse_matches(target, expected_rows(store), orgs=store.org_pks())
    assert_no_duplicate_keys(target)
    if issues:
        assert_issues_match(target, server)


def assert_issues_match(target: Any, server: SandboxServer) -> None:
    """Open load issues of live orders equal the sandbox's poisoned values."""
    live = {(r["org_pk"], r["order_pk"]) for r in fetch_rows(target, "orders")}
    got = {
        (r["org_pk"], r["order_pk"], r["table_name"], r["column_name"], r["raw_value"])
        for r in fetch_rows(target, "load_issues", live_only=False)
        if (r["org_pk"], r["order_pk"]) in live
    }
    want = set(expected_issues(server.store))
    assert got == want, (
        f"load issues differ: missing {sorted(want - got)[:5]}, extra {sorted(got - want)[:5]}"
    )


def watermark(target: Any, org_pk: str) -> datetime | None:
    from warehouse import state

    engine = warehouse_engine(target)
    try:
        return state.get_watermark(engine, org_pk)
    finally:
        engine.dispose()


def assert_watermark_not_ahead(target: Any, server: SandboxServer) -> None:
    """Every order below each org's watermark is in the warehouse exactly as at the source.

    Only meaningful when the source did not change since the run that set the watermark.
    """
    store = server.store
    for org_pk in store.org_pks():
        mark = watermark(target, org_pk)
        if mark is None:
            continue
        expected = expected_rows(store, org_pk, until=mark)
        actual = {t: [r for r in fetch_rows(target, t) if r["org_pk"] == org_pk] for t in expected}
        keys = {r["order_pk"] for r in expected["orders"]}
        trimmed = {t: [r for r in rows if r["order_pk"] in keys] for t, rows in actual.items()}
        from support import diff_table

        problems: list[str] = []
        for table, rows in expected.items():
            problems += diff_table(trimmed[table], rows, table)
        assert not problems, (
            f"org {org_pk}: watermark {mark.isoformat()} is ahead of the data:\n  "
            + "\n  ".join(problems[:20])
        )


def live_order_keys(target: Any) -> set[tuple[str, str]]:
    return {(r["org_pk"], r["order_pk"]) for r in fetch_rows(target, "orders")}


def source_order_keys(server: SandboxServer) -> set[tuple[str, str]]:
    return {(org, pk) for org in server.store.org_pks() for pk in server.store.order_pks(org)}


def python_cli(args: Iterable[str]) -> list[str]:
    """Command line running the crash-hook wrapper around `rc-sync` (see crash_runner.py)."""
    return [str(PYTHON), "-m", "crash_runner", *args]
