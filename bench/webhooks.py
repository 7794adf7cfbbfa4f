"""Webhook benchmark: change-to-visible latency, throughput and API requests per 1,000 changes.

    .venv/bin/python -m bench.webhooks [--changes 1000] [--rate 50] [--dialects sqlite,postgresql]

For each warehouse: a sandbox with `--orders` orders, a first sync, `rc-sync webhooks serve`
(receiver + applier, in this process on its own threads) and `register`; then `--changes`
order updates at `--rate` per second. A watcher polls the warehouse every 20 ms and notes when
each change becomes visible in SQL. Reported, never asserted (see docs/performance.md).
"""

from __future__ import annotations

import argparse
import os
import random
import threading
import time
import uuid
from typing import Any

import sqlalchemy as sa

from rc_sandbox import SandboxConfig, SandboxServer
from rc_sync.engine import SyncEngine
from rc_sync.settings import load_settings
from rc_sync.webhooks import service
from warehouse.db import make_engine

PG_URL = os.environ.get(
    "RC_SYNC_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered) + 0.5) - 1))]


def run_one(dialect: str, changes: int, rate: float, orders: int, tmp: str) -> dict[str, Any]:
    """One measured stream of changes into one warehouse."""
    if dialect == "sqlite":
        url, schema = f"sqlite:///{tmp}/webhooks-bench-{uuid.uuid4().hex[:6]}.db", "readycloud"
    else:
        url, schema = PG_URL, f"bench_wh_{uuid.uuid4().hex[:8]}"
    config = SandboxConfig(orgs=2, orders=orders, seed=5, control=True)
    with SandboxServer(config) as server:
        settings = load_settings(
            readycloud_base_url=server.base_url,
            readycloud_api_token=server.token,
            warehouse_url=url,
            warehouse_schema=schema,
        )
        with SyncEngine(settings, auto_migrate=True) as engine:
            engine.sync_incremental()
        stop = threading.Event()
        ready = threading.Event()
        bases: list[str] = []
        receiver = threading.Thread(
            target=service.serve,
            args=(settings,),
            kwargs={
                "host": "127.0.0.1",
                "port": 0,
                "on_ready": lambda b: (bases.append(b), ready.set()),
                "stop": stop,
            },
            daemon=True,
        )
        receiver.start()
        ready.wait(30)
        service.register(settings, bases[0])
        db = make_engine(url, schema)
        changed_at: dict[str, float] = {}
        seen_at: dict[str, float] = {}
        done = threading.Event()

        def watch() -> None:
            query = sa.text("SELECT message FROM orders WHERE message LIKE 'bench %'")
            while not done.is_set() or len(seen_at) < len(changed_at):
                with db.connect() as conn:
                    now = time.monotonic()
                    for (message,) in conn.execute(query):
                        seen_at.setdefault(message, now)
                if done.is_set() and time.monotonic() - last_change > 60:
                    return
                time.sleep(0.02)

        last_change = time.monotonic()
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        before = server.stats.snapshot()
        rng = random.Random(1)
        store = server.store
        orgs = store.org_pks()
        pks = {org: store.order_pks(org) for org in orgs}
        used: set[tuple[str, str]] = set()
        start = time.monotonic()
        for i in range(changes):
            due = start + i / rate
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            while True:  # each change on an order of its own, so that every message is final
                org = orgs[rng.randrange(len(orgs))]
                pk = pks[org][rng.randrange(len(pks[org]))]
                if (org, pk) not in used:
                    used.add((org, pk))
                    break
            message = f"bench {i}"
            changed_at[message] = time.monotonic()
            store.update_order(org, pk, message=message)
        last_change = time.monotonic()
        sent_for = last_change - start
        done.set()
        watcher.join(120)
        server.hub.wait_idle(60)
        after = server.stats.snapshot()
        stop.set()
        receiver.join(30)
        db.dispose()
        if dialect == "postgresql":
            admin = sa.create_engine(PG_URL)
            with admin.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            admin.dispose()
    lags = [seen_at[m] - changed_at[m] for m in changed_at if m in seen_at]
    return {
        "dialect": dialect,
        "changes": changes,
        "visible": len(lags),
        "rate_offered": rate,
        "rate_achieved": changes / sent_for,
        "p50_ms": 1000 * _percentile(lags, 0.5) if lags else None,
        "p95_ms": 1000 * _percentile(lags, 0.95) if lags else None,
        "max_ms": 1000 * max(lags) if lags else None,
        # end to end: changes made visible per second, first change to last one visible
        "throughput": len(lags) / (max(seen_at.values()) - min(changed_at.values()))
        if lags
        else None,
        "requests_per_1000": (after["requests"] - before["requests"]) * 1000 / changes,
        "list_requests": after["list"] - before["list"] + after["compact"] - before["compact"],
    }


def main() -> None:
    """Run the webhook benchmark and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=50.0, help="changes per second")
    parser.add_argument("--orders", type=int, default=4000)
    parser.add_argument("--dialects", default="sqlite,postgresql")
    parser.add_argument("--tmp", default="/tmp")
    args = parser.parse_args()
    rows = [
        run_one(d.strip(), args.changes, args.rate, args.orders, args.tmp)
        for d in args.dialects.split(",")
        if d.strip()
    ]
    print(
        "| warehouse | changes | visible | offered/s | achieved/s | p50 ms | p95 ms | max ms "
        "| visible/s | requests per 1,000 changes | list requests |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['dialect']} | {r['changes']} | {r['visible']} | {r['rate_offered']:.0f} "
            f"| {r['rate_achieved']:.1f} | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} "
            f"| {r['max_ms']:.0f} | {r['throughput']:.1f} | {r['requests_per_1000']:.0f} "
            f"| {r['list_requests']} |"
        )


if __name__ == "__main__":
    main()
