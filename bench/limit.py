"""The limit: what the hardware, the sandbox and the database allow, without rc-sync's engine.

Run as a child process by `python -m bench` (prints one JSON line):

* fetch+parse: every page of every org with a bare, sequential httpx loop and `json.loads`;
* bulk load: the same rows rc-sync writes (normalized outside the timer), loaded with the
  fastest path each database has (one `executemany` per table in one transaction on SQLite;
  `COPY` straight into the tables on PostgreSQL), into freshly migrated, empty tables.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from typing import Any

import httpx

TABLE_ORDER = ("orders", "addresses", "boxes", "items")


def fetch_pages(
    base_url: str, token: str, orgs: list[str], page_size: int, keep: bool
) -> dict[str, Any]:
    """Time a bare sequential page walk; optionally keep (outside the timer) the rows to load."""
    from warehouse.normalize import normalize_orders

    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    elapsed = 0.0
    cpu = 0.0
    pages = orders = nbytes = 0
    batches: list[Any] = []
    synced_at = datetime.now(UTC)
    with httpx.Client(headers=headers, timeout=60) as client:
        for org in orgs:
            offset = 0
            while True:
                started = time.perf_counter()
                cpu_started = time.process_time()
                response = client.get(
                    f"{base_url}/api/v2/orgs/{org}/orders/",
                    params={"expand": "boxes,items", "limit": page_size, "offset": offset},
                )
                response.raise_for_status()
                body = response.content
                data = json.loads(body)
                elapsed += time.perf_counter() - started
                cpu += time.process_time() - cpu_started
                results = data["results"]
                pages += 1
                orders += len(results)
                nbytes += len(body)
                if keep and results:
                    batches.append((org, normalize_orders(org, results, synced_at)))
                if not data.get("next") or not results:
                    break
                offset += len(results)
    return {
        "elapsed_s": elapsed,
        "cpu_s": cpu,
        "pages": pages,
        "orders": orders,
        "bytes": nbytes,
        "batches": batches,
    }


def _rows(batches: list[Any], dialect: str) -> dict[str, list[tuple[Any, ...]]]:
    """Driver-ready tuples per table, converted exactly like rc-sync's loader does."""
    from warehouse import models
    from warehouse.bulk import _converter
    from warehouse.normalize import RAW_JSON

    tables = {
        "orders": models.orders_table,
        "boxes": models.boxes_table,
        "items": models.items_table,
        "addresses": models.addresses_table,
    }
    out: dict[str, list[tuple[Any, ...]]] = {name: [] for name in TABLE_ORDER}
    for _, batch in batches:
        for name in TABLE_ORDER:
            table = tables[name]
            frame = batch.tables[name]
            if not len(frame):
                continue
            columns = []
            for column in table.columns:
                if name == "orders" and column.name == "raw":
                    columns.append(frame[RAW_JSON].tolist())
                elif column.name in frame:
                    convert = _converter(column, dialect)
                    columns.append([convert(v) for v in frame[column.name].tolist()])
                else:
                    columns.append([None] * len(frame))
            out[name].extend(zip(*columns, strict=True))
    return out


def bulk_load(url: str, schema: str, batches: list[Any]) -> dict[str, Any]:
    """Time the fastest load of all rows into empty, migrated tables (one transaction)."""
    from warehouse import models
    from warehouse.db import make_engine

    dialect = "sqlite" if url.startswith("sqlite") else "postgresql"
    rows = _rows(batches, dialect)
    tables = {
        t.name: t
        for t in (
            models.orders_table,
            models.boxes_table,
            models.items_table,
            models.addresses_table,
        )
    }
    engine = make_engine(url, schema)
    total_rows = sum(len(v) for v in rows.values())
    try:
        with engine.connect() as conn:
            raw: Any = conn.connection.dbapi_connection
            started = time.perf_counter()
            cpu_started = time.process_time()
            if dialect == "sqlite":
                cursor = raw.cursor()
                cursor.execute("BEGIN IMMEDIATE")
                for name in TABLE_ORDER:
                    table = tables[name]
                    cols = ", ".join(f'"{c.name}"' for c in table.columns)
                    marks = ", ".join("?" for _ in table.columns)
                    cursor.executemany(
                        f'INSERT INTO "{name}" ({cols}) VALUES ({marks})', rows[name]
                    )
                cursor.execute("COMMIT")
            else:
                with raw.cursor() as cursor:
                    for name in TABLE_ORDER:
                        table = tables[name]
                        cols = ", ".join(f'"{c.name}"' for c in table.columns)
                        with cursor.copy(f'COPY "{name}" ({cols}) FROM STDIN') as copy:
                            for values in rows[name]:
                                copy.write_row(values)
                raw.commit()
            elapsed = time.perf_counter() - started
            cpu = time.process_time() - cpu_started
    finally:
        engine.dispose()
    return {
        "elapsed_s": elapsed,
        "cpu_s": cpu,
        "rows": total_rows,
        "per_table": {k: len(v) for k, v in rows.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--orgs", required=True, help="comma-separated org pks")
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument(
        "--load",
        action="append",
        default=[],
        metavar="URL|SCHEMA",
        help="also bulk-load the rows into this migrated warehouse (repeatable)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="fetch+parse repetitions")
    args = parser.parse_args()
    orgs = [o for o in args.orgs.split(",") if o]
    result: dict[str, Any] = {"fetch": [], "load": {}}
    batches: list[Any] = []
    for attempt in range(args.repeat):
        keep = attempt == 0 and bool(args.load)
        walk = fetch_pages(args.base_url, args.token, orgs, args.page_size, keep)
        if keep:
            batches = walk["batches"]
        walk.pop("batches")
        result["fetch"].append(walk)
    for target in args.load:
        url, _, schema = target.partition("|")
        dialect = "sqlite" if url.startswith("sqlite") else "postgresql"
        result["load"].setdefault(dialect, []).append(
            bulk_load(url, schema or "readycloud", batches)
        )
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
