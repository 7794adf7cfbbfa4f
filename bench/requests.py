"""Requests per 1,000 orders: what a full sync, a 1% refresh, a 30-day backfill and a reconcile
cost in API requests, and the wall time that implies at a rate limit.

    python -m bench.requests --orders 10000 --page-cap 1000   # prints one JSON document

Runs the sandbox and the engine in this process on a temporary SQLite warehouse with the rate
limit off (the count of requests does not depend on the rate; the time does, and is derived
from the counts by `simulated_wall_s`). The sandbox counts every request it answers, so the
figures are the server's view, retries included. Written to run unchanged against older
versions of rc-sync (only `SyncEngine` and `load_settings` are used), so "before" and "after"
figures come from the same code on the same data.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any


def simulated_wall_s(requests: int, limit: int, period_s: float) -> float:
    """Seconds `requests` GETs take under 'at most `limit` in any sliding window of `period_s`'.

    The first `limit` go at once; request number k (0-based) waits for request k - limit to
    leave the window, so the last one starts at floor((requests - 1) / limit) * period.
    """
    if requests <= limit:
        return 0.0
    return math.floor((requests - 1) / limit) * period_s


def _measure(sandbox: Any, action: Callable[[], Any], per_orders: int) -> dict[str, Any]:
    before = sandbox.stats.snapshot()
    action()
    after = sandbox.stats.snapshot()
    requests = after["requests"] - before["requests"]
    kinds = {k: after[k] - before[k] for k in ("orgs", "list", "compact", "detail")}
    return {
        "requests": requests,
        "by_server_kind": kinds,
        "per_1000_orders": round(requests * 1000 / per_orders, 2) if per_orders else None,
    }


def run(orders: int, orgs: int, page_cap: int, seed: int) -> dict[str, Any]:
    """Measure the four scenarios on one freshly generated sandbox."""
    os.environ["READYCLOUD_RATE_LIMIT"] = "off"  # counts, not waits (ignored by old versions)
    os.environ.pop("RC_SYNC_MAX_RPS", None)
    from rc_sandbox import SandboxConfig, SandboxServer
    from rc_sync.engine import SyncEngine
    from rc_sync.settings import load_settings

    config = SandboxConfig(orgs=orgs, orders=orders, seed=seed, page_cap=page_cap, control=True)
    results: dict[str, Any] = {"orders": orders, "orgs": orgs, "server_page_cap": page_cap}
    with tempfile.TemporaryDirectory() as tmp, SandboxServer(config) as sandbox:
        settings = load_settings(
            readycloud_base_url=sandbox.base_url,
            readycloud_api_token=sandbox.token,
            warehouse_url=f"sqlite:///{Path(tmp) / 'bench.db'}",
        )
        store = sandbox.store
        total = sum(len(store.order_pks(o)) for o in store.org_pks())

        def engine() -> Any:
            return SyncEngine(settings)

        def full() -> None:
            with engine() as e:
                e.sync_incremental()

        results["full_sync"] = _measure(sandbox, full, total)

        rng = random.Random(seed)
        changed = 0
        for org in store.org_pks():
            pks = store.order_pks(org)
            for pk in rng.sample(pks, max(1, len(pks) // 100)):
                store.update_order(org, pk, message=f"bench change {changed}")
                changed += 1

        def refresh() -> None:
            with engine() as e:
                e.sync_incremental()

        results["refresh_1pct"] = _measure(sandbox, refresh, total)
        results["refresh_1pct"]["changed"] = changed

        # 30 whole days of generated data (the mutations above all carry today's time).
        until = getattr(store, "data_until", None)  # older sandboxes: data ended 2025-01-01
        end_day = (until - timedelta(days=1)).date() if until else date(2024, 12, 31)
        days = [end_day - timedelta(days=n) for n in range(30)]

        def backfill() -> None:
            with engine() as e:
                e.backfill_days(days, key=f"bench-{seed}")

        in_days = _orders_in_days(store, days)
        results["backfill_30d"] = _measure(sandbox, backfill, total)
        results["backfill_30d"]["orders_in_window"] = in_days

        def reconcile() -> None:
            with engine() as e:
                e.reconcile()

        results["reconcile"] = _measure(sandbox, reconcile, total)
    return results


def _orders_in_days(store: Any, days: list[date]) -> int:
    lo = datetime.combine(min(days), datetime.min.time(), tzinfo=UTC)
    hi = datetime.combine(max(days) + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    return len(store.orders_in_window(None, lo, hi))


# Measured with this module on the main branch before the request budget (commit e4e96be:
# pages of 100, one walk per backfill day, no page-size probe), N=30,000 orders in 2 orgs,
# seed 7 — the same data `measure_all` generates. Requests per scenario, by server page cap.
BEFORE: dict[int, dict[str, int]] = {
    1000: {"full_sync": 305, "refresh_1pct": 5, "backfill_30d": 61, "reconcile": 301},
    100: {"full_sync": 305, "refresh_1pct": 5, "backfill_30d": 61, "reconcile": 301},
}
BEFORE_ORDERS = 30_000
SCENARIOS = (
    ("full_sync", "full sync (first load)"),
    ("refresh_1pct", "refresh, 1% of orders changed"),
    ("backfill_30d", "30-day backfill"),
    ("reconcile", "reconcile"),
)


def measure_all(orders: int, orgs: int = 2, seed: int = 7) -> dict[int, dict[str, Any]]:
    """The four scenarios against a server that honours pages of 1000, and one capped at 100."""
    return {cap: run(orders, orgs, cap, seed) for cap in (1000, 100)}


def first_load_requests(result: dict[str, Any], orders: int) -> int:
    """Requests of a first load of `orders` orders, scaled from the measured full sync:
    the list pages scale with the orders, the org listing and probes do not."""
    full = result["full_sync"]
    pages = full["by_server_kind"]["list"]
    fixed = full["requests"] - pages
    return fixed + math.ceil(pages * orders / result["orders"])


def refresh_requests(result: dict[str, Any], orgs: int) -> int:
    """Requests of one refresh of `orgs` orgs like the measured ones (one org listing each run)."""
    refresh = result["refresh_1pct"]["requests"]
    per_org = (refresh - 1) / result["orgs"]
    return 1 + math.ceil(per_org * orgs)


def table(
    measured: dict[int, dict[str, Any]], limit: int = 30, period_s: float = 60.0
) -> list[str]:
    """Markdown rows: requests per 1,000 orders before -> after, and simulated wall times."""
    lines = [
        "| scenario | server page cap | requests before | requests after | "
        "per 1,000 orders before | per 1,000 orders after |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for cap, result in measured.items():
        orders = result["orders"]
        before = BEFORE.get(cap, {}) if orders == BEFORE_ORDERS else {}
        for key, label in SCENARIOS:
            after = result[key]["requests"]
            old = before.get(key)
            lines.append(
                f"| {label} | {cap} | {old if old is not None else '-'} | {after} | "
                f"{'-' if old is None else f'{old * 1000 / orders:.2f}'} | "
                f"{after * 1000 / orders:.2f} |"
            )
    lines += [
        "",
        f"| simulated at {limit}/{'min' if period_s == 60 else f'{period_s:g}s'} "
        "| server page cap | requests | wall time |",
        "|---|---:|---:|---:|",
    ]
    for cap, result in measured.items():
        first = first_load_requests(result, 1_000_000)
        refresh = refresh_requests(result, 100)
        for label, requests in (
            ("first load of 1,000,000 orders", first),
            ("refresh of 100 orgs", refresh),
        ):
            wall = simulated_wall_s(requests, limit, period_s)
            lines.append(f"| {label} | {cap} | {requests:,} | {_duration(wall)} |")
    return lines


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


def main(argv: list[str] | None = None) -> None:
    """Print the measurements as one JSON document."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=BEFORE_ORDERS)
    parser.add_argument("--orgs", type=int, default=2)
    parser.add_argument("--page-cap", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--table", action="store_true", help="Both caps, as Markdown tables.")
    args = parser.parse_args(argv)
    if args.table:
        print("\n".join(table(measure_all(args.orders, args.orgs, args.seed))))
        return
    result = run(args.orders, args.orgs, args.page_cap, args.seed)
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
