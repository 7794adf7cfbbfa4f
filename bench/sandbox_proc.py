"""The sandbox in its own process, steered over stdin (so its ~4 KB/order cache is not measured).

Prints one JSON line {"base_url", "token", "orgs", "orders", "generate_s"} once it listens, then
answers one JSON line per command read from stdin:

    latency <ms>        set the per-request latency
    touch <fraction>    update that share of every org's orders (message changes), evenly spread
    stats               the sandbox's request counters
    quit
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime, timedelta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--orgs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument(
        "--data-until-hours-ago",
        type=float,
        default=1.0,
        help="generated data end this long before the start (the refresh's overlap then "
        "re-reads only what changed, not the densest minutes of the generated data)",
    )
    args = parser.parse_args()

    from rc_sandbox import SandboxConfig, SandboxServer

    started = time.perf_counter()
    until = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=args.data_until_hours_ago)
    config = SandboxConfig(
        orgs=args.orgs,
        orders=args.orders,
        seed=args.seed,
        latency_ms=args.latency_ms,
        data_until=until,
    )
    server = SandboxServer(config)
    server.store.prerender(("expanded", "compact"))
    server.start()
    store = server.store
    hello = {
        "base_url": server.base_url,
        "token": server.token,
        "orgs": store.org_pks(),
        "orders": store.order_count(),
        "generate_s": round(time.perf_counter() - started, 2),
    }
    print(json.dumps(hello), flush=True)
    touched_rounds = 0
    try:
        for line in sys.stdin:
            words = line.split()
            if not words:
                continue
            command = words[0]
            if command == "quit":
                break
            if command == "latency":
                config.update(latency_ms=float(words[1]))
                print(json.dumps({"latency_ms": config.latency_ms}), flush=True)
            elif command == "touch":
                fraction = float(words[1])
                touched_rounds += 1
                changed = 0
                for org in store.org_pks():
                    pks = store.order_pks(org)
                    want = max(1, round(len(pks) * fraction)) if pks else 0
                    step = max(1, len(pks) // want) if want else 1
                    for pk in pks[::step][:want]:
                        store.update_order(org, pk, message=f"bench change {touched_rounds}")
                        changed += 1
                store.prerender(("expanded", "compact"))
                print(json.dumps({"changed": changed}), flush=True)
            elif command == "stats":
                print(json.dumps(server.stats.snapshot()), flush=True)
            else:
                print(json.dumps({"error": f"unknown command {command!r}"}), flush=True)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
