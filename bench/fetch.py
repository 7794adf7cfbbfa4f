"""rc-sync's extraction stage alone (ChangeReader over every org, no warehouse): one JSON line.

Used for the concurrency sweep: with per-request latency, how fast does rc_extract read a
full window at a given concurrency?
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from rc_common.timefmt import utc_now
from rc_extract.changes import ChangeReader, Window
from rc_extract.client import ReadyCloudClient


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--orgs", required=True)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--page-size", type=int, default=100)
    args = parser.parse_args()
    started = time.perf_counter()
    cpu = time.process_time()
    orders = 0
    with ReadyCloudClient(
        args.base_url, args.token, concurrency=args.concurrency, page_size=args.page_size
    ) as client:
        reader = ChangeReader(client)
        client.list_orgs()
        for org in args.orgs.split(","):
            for batch in reader.iter_window(org, Window(None, utc_now())):
                orders += len(batch.orders)
        requests = int(client.stats.snapshot().get("requests", 0))
    elapsed = time.perf_counter() - started
    result = {
        "elapsed_s": elapsed,
        "cpu_s": time.process_time() - cpu,
        "orders": orders,
        "requests": requests,
    }
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
