"""`rc-sync demo`: the whole pipeline against the built-in sandbox, on the embedded default."""

from __future__ import annotations

import time

import sqlalchemy as sa
from rich.console import Console
from rich.table import Table

from rc_sync.errors import ConfigError
from rc_sync.progress import default_progress
from rc_sync.settings import load_settings
from rc_sync.summary import print_report
from warehouse.settings import WarehouseSettings

SAMPLE_SQL = """\
-- what was shipped where, one row per item line
SELECT order_number, ship_to_country, part_number, quantity, unit_price, currency
FROM order_lines ORDER BY ordered_at DESC LIMIT 10;

-- daily totals per currency
SELECT * FROM daily_order_summary ORDER BY day DESC LIMIT 7;

-- values the loader could not parse (kept as NULL, raw value recorded)
SELECT table_name, column_name, raw_value, message FROM load_issues LIMIT 10;"""


def run_demo(*, n_orders: int, warehouse_url: str, console: Console) -> None:
    """Start the sandbox in-process, sync into `warehouse_url`, print a summary and sample rows."""
    from rc_sandbox import SandboxConfig, SandboxServer
    from rc_sync.engine import SyncEngine

    started = time.monotonic()
    console.print(f"[bold]1/3[/] starting the ReadyCloud sandbox with {n_orders} orders...")
    with SandboxServer(SandboxConfig(orgs=2, orders=n_orders, seed=1)) as server:
        settings = load_settings(
            readycloud_base_url=server.base_url,
            readycloud_api_token=server.token,
            readycloud_orgs=",".join(server.store.org_pks()),
            warehouse_url=warehouse_url,
            rate_limit="off",  # the demo's sandbox is not throttled
        )
        _refuse_foreign_data(settings.warehouse, server.store.org_pks())
        console.print(f"     serving {server.base_url} (token {server.token!r})")
        console.print(f"[bold]2/3[/] migrating and syncing into {warehouse_url} ...")
        progress = default_progress()
        try:
            with SyncEngine(settings, progress=progress, auto_migrate=True) as engine:
                # A full refresh every time: the demo always shows the whole sandbox data set.
                report = engine.sync_full_refresh()
        finally:
            progress.close()
    print_report(report, console)
    console.print("[bold]3/3[/] a few rows of the order_lines view:")
    _show_sample(settings.warehouse, console)
    console.print("\n[bold]Try it yourself[/] (sqlite3 readycloud.db, or any SQL client):")
    console.print(SAMPLE_SQL, highlight=False)
    console.print(
        "\n[bold]Next steps[/]\n"
        "  • real data: export READYCLOUD_API_TOKEN=... (README: 'Getting a token'), then `rc-sync sync`\n"
        "  • PostgreSQL: export WAREHOUSE_URL=postgresql://user@host/db, then `rc-sync migrate`\n"
        "  • check a real configuration: `rc-sync check`; see every setting: `rc-sync config`\n"
        "  • Dagster: source .venv/bin/activate; RC_SANDBOX=1 dg dev (README: 'Running in Dagster')\n"
        f"demo finished in {time.monotonic() - started:.1f}s"
    )


def _refuse_foreign_data(warehouse: WarehouseSettings, sandbox_orgs: list[str]) -> None:
    """Do not mix sandbox data into a warehouse that holds real orgs."""
    engine = warehouse.make_engine()
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("sync_state"):
                return
            orgs = {r[0] for r in conn.execute(sa.text("SELECT org_pk FROM sync_state"))}
    finally:
        engine.dispose()
    foreign = orgs - set(sandbox_orgs)
    if foreign:
        raise ConfigError(
            f"{warehouse.warehouse_url} already holds data of other orgs ({', '.join(sorted(foreign))}); the demo will "
            "not mix sandbox data into it. Run it elsewhere: rc-sync demo --warehouse-url sqlite:///demo.db"
        )


def _show_sample(warehouse: WarehouseSettings, console: Console) -> None:
    """Print a few rows of order_lines."""
    engine = warehouse.make_engine()
    try:
        with engine.connect() as conn:
            result = conn.execute(
                sa.text(
                    "SELECT order_number, ship_to_country, part_number, quantity, unit_price, currency "
                    "FROM order_lines ORDER BY ordered_at DESC LIMIT 8"
                )
            )
            table = Table()
            for col in list(result.keys()):
                table.add_column(col)
            for row in result:
                table.add_row(*("" if v is None else str(v) for v in row))
    finally:
        engine.dispose()
    console.print(table)
