"""The `rc-sync` command line: migrate, sync, reconcile, status, plan, sandbox and demo."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.table import Table

from rc_common.tables import DATA_TABLES
from rc_common.timefmt import parse_user_datetime
from rc_sync.errors import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    ConfigError,
    describe_failure,
)
from rc_sync.report import RunReport
from rc_sync.settings import DEFAULT_SANDBOX_ORDERS, Settings, load_settings
from rc_sync.summary import print_report, requests_line

log = logging.getLogger("rc_sync")
# In a pipe or a file, rich's default of 80 columns would truncate table cells and break long
# lines (commands included) wherever it likes: there, lines are as long as their content.
console = Console() if sys.stdout.isatty() else Console(width=1000, soft_wrap=True)
err_console = Console(stderr=True, highlight=False)


def _redact(text: str, settings: Settings | None) -> str:
    """Defence in depth: never print the token, whatever an error message contains."""
    from rc_common.redact import redact

    token = (
        settings.readycloud_api_token.get_secret_value()
        if settings and settings.readycloud_api_token
        else ""
    )
    return redact(text, token.strip())


def _fail(code: int, message: str) -> NoReturn:
    from rc_sync import logs

    if logs.json_logs():
        print(logs.error_line(message, code), file=sys.stderr, flush=True)
    else:
        err_console.print(f"[bold red]rc-sync:[/] {message}", highlight=False, soft_wrap=True)
    sys.exit(code)


def _guarded(settings: Settings | None, action: Callable[[], Any], debug: bool) -> Any:
    """Run `action`, turning errors into one clear sentence and the CONTRACT exit codes."""
    try:
        return action()
    except KeyboardInterrupt:
        # 130 = 128 + SIGINT, what shells and schedulers expect of an interrupted command.
        _fail(EXIT_INTERRUPTED, "interrupted; everything committed before the interrupt is kept")
    except Exception as exc:
        if debug:
            raise
        code, message = describe_failure(exc)
        if code == EXIT_FAILED:
            message = (
                f"run failed: {message.rstrip('.')}. Everything committed before the failure "
                "is kept; the next run continues from the saved watermark."
            )
        _fail(code, _redact(message, settings))


class Ctx:
    """Options given on the command group, applied on top of the environment."""

    def __init__(
        self, overrides: dict[str, Any], verbose: int, debug: bool, log_settings: Any
    ) -> None:
        self.overrides = overrides
        self.verbose = verbose
        self.debug = debug
        self.log_settings = log_settings

    def settings(self, **more: Any) -> Settings:
        """Settings from env/.env plus the command-line overrides."""
        return load_settings(**{**self.overrides, **more})


pass_ctx = click.make_pass_decorator(Ctx)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--base-url", help="ReadyCloud host (READYCLOUD_BASE_URL).")
@click.option("--orgs", help="Comma-separated org pks to sync (READYCLOUD_ORGS).")
@click.option("--warehouse-url", help="SQLAlchemy URL of the warehouse (WAREHOUSE_URL).")
@click.option("--schema", help="PostgreSQL schema for the tables (WAREHOUSE_SCHEMA).")
@click.option("--page-size", type=int, help="Orders per API page (RC_SYNC_PAGE_SIZE).")
@click.option("--concurrency", type=int, help="Pages fetched at once (RC_SYNC_CONCURRENCY).")
@click.option(
    "--rate-limit",
    metavar="N/PERIOD",
    help="The App's GET budget, e.g. 30/min, 20/4s, off (READYCLOUD_RATE_LIMIT).",
)
@click.option("--max-rps", type=float, hidden=True, help="Deprecated: use --rate-limit.")
@click.option(
    "--log-format",
    type=click.Choice(["human", "json"], case_sensitive=False),
    help="Log lines as text or one JSON object per line (RC_SYNC_LOG_FORMAT).",
)
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.version_option(package_name="rc-sync")
@click.pass_context
def cli(
    ctx: click.Context,
    base_url: str | None,
    orgs: str | None,
    warehouse_url: str | None,
    schema: str | None,
    page_size: int | None,
    concurrency: int | None,
    rate_limit: str | None,
    max_rps: float | None,
    log_format: str | None,
    verbose: int,
    debug: bool,
) -> None:
    """Keep a SQL warehouse in step with ReadyCloud. Settings come from the environment, a .env
    file, or these options."""
    from rc_sync.logs import setup_logging
    from rc_sync.settings import load_log_settings

    try:
        log_settings = load_log_settings(log_format=log_format)
    except ConfigError as exc:
        setup_logging(verbose)
        _fail(EXIT_CONFIG, str(exc))
    setup_logging(verbose, log_settings.log_format)
    ctx.obj = Ctx(
        {
            "readycloud_base_url": base_url,
            "readycloud_orgs": orgs,
            "warehouse_url": warehouse_url,
            "warehouse_schema": schema,
            "page_size": page_size,
            "concurrency": concurrency,
            "rate_limit": rate_limit,
            "max_rps": max_rps,
        },
        verbose,
        debug,
        log_settings,
    )


def _settings(ctx: Ctx) -> Settings:
    from rc_sync.logs import add_secret

    try:
        settings = ctx.settings()
    except ConfigError as exc:
        _fail(EXIT_CONFIG, str(exc))
    token = settings.readycloud_api_token
    add_secret(token.get_secret_value() if token is not None else None)
    return settings


@cli.command()
@pass_ctx
def migrate(ctx: Ctx) -> None:
    """Apply the database migrations to WAREHOUSE_URL."""
    from warehouse import migrate as wh_migrate

    settings = _settings(ctx)

    def action() -> None:
        engine = settings.warehouse.make_engine()
        try:
            before = wh_migrate.current_revision(engine)
            wh_migrate.upgrade(engine)
            after = wh_migrate.current_revision(engine)
        finally:
            engine.dispose()
        if before == after:
            console.print(f"warehouse is up to date (revision {after})")
        else:
            console.print(f"migrated warehouse from {before or 'empty'} to {after}")

    _guarded(settings, action, ctx.debug)


def _parse_when(value: str | None, flag: str) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_user_datetime(value)
    except ValueError as exc:
        _fail(EXIT_CONFIG, f"{flag}: {exc}")


@cli.command()
@click.option(
    "--full-refresh",
    is_flag=True,
    help="Re-read everything; the watermark ends where an incremental run would.",
)
@click.option(
    "--since",
    "since_text",
    metavar="T",
    help="Backfill: re-read orders whose nested_updated_at >= T.",
)
@click.option(
    "--until", "until_text", metavar="T", help="Backfill: upper bound (exclusive), default now."
)
@click.option(
    "--reset-watermark",
    is_flag=True,
    help="Forget each org's watermark first and read every order again (operators' reset).",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the run report as JSON instead of a table."
)
@pass_ctx
def sync(
    ctx: Ctx,
    full_refresh: bool,
    since_text: str | None,
    until_text: str | None,
    reset_watermark: bool,
    as_json: bool,
) -> None:
    """Incremental sync of every configured org (first run = full); or a refresh / backfill."""
    from rc_sync.engine import SyncEngine
    from rc_sync.progress import default_progress

    if full_refresh and since_text:
        _fail(EXIT_CONFIG, "--full-refresh and --since cannot be combined")
    if until_text and not since_text:
        _fail(EXIT_CONFIG, "--until needs --since (a backfill window)")
    if reset_watermark and (since_text or full_refresh):
        _fail(EXIT_CONFIG, "--reset-watermark applies to incremental syncs only")
    since = _parse_when(since_text, "--since")
    until = _parse_when(until_text, "--until")
    settings = _settings(ctx)

    def action() -> RunReport:
        progress = default_progress()
        try:
            with SyncEngine(settings, progress=progress) as engine:
                if since is not None:
                    return engine.sync_window(since, until)
                if full_refresh:
                    return engine.sync_full_refresh()
                return engine.sync_incremental(reset_watermark=reset_watermark)
        finally:
            progress.close()

    report: RunReport = _guarded(settings, action, ctx.debug)
    print_report(report, console, as_json=as_json)


@cli.command()
@click.option(
    "--force", is_flag=True, help="Allow marking more than half of an org's orders deleted."
)
@pass_ctx
def reconcile(ctx: Ctx, force: bool) -> None:
    """Find orders that no longer exist at the source and mark them deleted."""
    from rc_sync.engine import SyncEngine
    from rc_sync.progress import default_progress

    settings = _settings(ctx)

    def action() -> RunReport:
        progress = default_progress()
        try:
            with SyncEngine(settings, progress=progress) as engine:
                return engine.reconcile(force=force)
        finally:
            progress.close()

    report: RunReport = _guarded(settings, action, ctx.debug)
    table = Table(title="reconcile")
    for col in ("org", "at source", "marked deleted", "restored", "requests", "elapsed"):
        table.add_column(col, justify="right" if col != "org" else "left")
    for org in report.orgs:
        table.add_row(
            org.org_pk,
            str(org.orders_read),
            str(org.orders_deleted),
            str(org.orders_restored),
            str(org.requests),
            f"{org.elapsed_s:.1f}s",
        )
    console.print(table)
    console.print(requests_line(report), highlight=False)


@cli.command()
@click.option(
    "--orgs",
    "orgs_text",
    metavar="PK,PK",
    help="Only these orgs (default: READYCLOUD_ORGS or all).",
)
@click.option("--since", "since_text", metavar="T", help="Only orders with nested_updated_at >= T.")
@click.option("--until", "until_text", metavar="T", help="Only orders with nested_updated_at < T.")
@click.option(
    "--all",
    "all_rows",
    is_flag=True,
    help="Re-derive every order in scope, not only those typed by an older normalization.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the run report as JSON.")
@pass_ctx
def rebuild(
    ctx: Ctx,
    orgs_text: str | None,
    since_text: str | None,
    until_text: str | None,
    all_rows: bool,
    as_json: bool,
) -> None:
    """Re-derive orders, boxes, items, addresses and history from stored documents (no API request)."""
    from rc_sync.engine import SyncEngine
    from rc_sync.progress import default_progress

    since = _parse_when(since_text, "--since")
    until = _parse_when(until_text, "--until")
    orgs = [o.strip() for o in (orgs_text or "").split(",") if o.strip()] or None
    settings = _settings(ctx)

    def action() -> RunReport:
        progress = default_progress()
        try:
            with SyncEngine(settings, progress=progress) as engine:
                return engine.rebuild(orgs, since=since, until=until, all_rows=all_rows)
        finally:
            progress.close()

    report: RunReport = _guarded(settings, action, ctx.debug)
    if as_json:
        import json

        click.echo(json.dumps(report.to_dict(), default=str, indent=2))
        return
    table = Table(title="rebuild (no API requests)")
    for col in ("org", "orders", *DATA_TABLES, "removed", "history", "issues +/-", "elapsed"):
        table.add_column(col, justify="left" if col == "org" else "right")
    for org in report.orgs:
        table.add_row(
            org.org_pk,
            str(org.orders_read),
            *(str(org.tables[t].updated) for t in DATA_TABLES),
            str(sum(org.tables[t].deleted for t in DATA_TABLES)),
            str(org.history_rows),
            f"+{org.load_issues_new}/-{org.load_issues_closed}",
            f"{org.elapsed_s:.1f}s",
        )
    console.print(table)
    console.print(
        "rows changed per table; 'removed' = child rows no longer derived; "
        "'history' = history versions re-typed"
    )


@cli.command("schema-drift")
@click.option("--orgs", "orgs_text", metavar="PK,PK", help="Only these orgs (default: all stored).")
@click.option("--json", "as_json", is_flag=True, help="Print the fields as JSON.")
@pass_ctx
def schema_drift(ctx: Ctx, orgs_text: str | None, as_json: bool) -> None:
    """Fields in the stored documents that no column maps, with counts and first/last seen."""
    from rc_sync.engine import SyncEngine

    orgs = _org_list(orgs_text)
    settings = _settings(ctx)

    def action() -> list[Any]:
        with SyncEngine(settings) as engine:
            return engine.schema_drift(orgs)

    fields = _guarded(settings, action, ctx.debug)
    if as_json:
        import json

        rows = [{**vars(f), "documented": f.documented} for f in fields]
        click.echo(json.dumps(rows, default=str, indent=2))
        return
    new = [f for f in fields if not f.documented]
    table = Table(title="fields no column maps (kept in orders.raw)")
    for col in ("field", "kind", "documents", "orgs", "first seen", "last seen"):
        table.add_column(col, justify="right" if col in ("documents", "orgs") else "left")
    for f in fields:
        table.add_row(
            f.path,
            "documented, raw only" if f.documented else "NEW",
            str(f.documents),
            str(f.orgs),
            str(f.first_seen or ""),
            str(f.last_seen or ""),
        )
    console.print(table)
    console.print(
        f"{len(new)} new field(s) not in rc-sync's field list"
        + ("; see README 'Schema changes'" if new else "")
    )


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the verdicts as JSON.")
@pass_ctx
def check(ctx: Ctx, as_json: bool) -> None:
    """Check the configuration, the API (one request) and the warehouse; exit 0 or 2."""
    import json

    from rc_sync.check import FAIL, run_check
    from rc_sync.errors import EXIT_OK
    from rc_sync.logs import add_secret

    def load() -> Settings:
        settings = ctx.settings()
        token = settings.readycloud_api_token
        add_secret(token.get_secret_value() if token is not None else None)
        return settings

    report = _guarded(None, lambda: run_check(load), ctx.debug)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        width = max(len(v.item) for v in report.verdicts)
        for v in report.verdicts:
            mark = f"{v.verdict:<7}"
            mark = f"[bold red]{mark}[/]" if v.verdict == FAIL else mark
            console.print(
                f"{v.item:<{width}}  {mark}  {v.detail}",
                highlight=False,
                soft_wrap=True,
            )
        verdict = "all checks passed" if report.ok else "some checks FAILED: fix what they say"
        console.print(f"{verdict} ({report.requests} API request(s))", highlight=False)
    sys.exit(EXIT_OK if report.ok else EXIT_CONFIG)


@cli.command("config")
@click.option("--json", "as_json", is_flag=True, help="Print the settings as JSON.")
@pass_ctx
def config_command(ctx: Ctx, as_json: bool) -> None:
    """Show the effective settings and where each came from (the token only as set/unset)."""
    import json

    from rc_sync.settings import describe_settings

    settings = _settings(ctx)
    rows = describe_settings(settings, ctx.log_settings, ctx.overrides)
    if as_json:
        click.echo(
            json.dumps(
                [{"variable": r.variable, "value": r.value, "source": r.source} for r in rows],
                indent=2,
            )
        )
        return
    width = max(len(r.variable) for r in rows)
    for r in rows:
        click.echo(f"{r.variable:<{width}}  {r.value}  ({r.source})")


@cli.command()
@click.option(
    "--orgs",
    "orgs_text",
    metavar="PK,PK",
    help="Only these orgs (default: the global --orgs / READYCLOUD_ORGS, else every org).",
)
@click.option(
    "--wide",
    is_flag=True,
    help="One table row per org (needs about 135 columns) instead of blocks.",
)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@pass_ctx
def status(ctx: Ctx, orgs_text: str | None, wide: bool, as_json: bool) -> None:
    """Per org: watermark, last run, row counts and open load issues."""
    import json

    from rc_sync.engine import SyncEngine

    settings = _settings(ctx)
    if orgs_text is not None:
        settings = _settings_with_orgs(ctx, orgs_text)
    orgs = settings.orgs

    def action() -> tuple[list[Any], dict[str, Any], dict[str, Any]]:
        from datetime import UTC, timedelta

        from warehouse import webhooks as wh

        with SyncEngine(settings) as engine:
            since = datetime.now(UTC) - timedelta(days=7)
            hooks = wh.status(engine.db, since)
            if orgs is not None:
                hooks = {org: st for org, st in hooks.items() if org in orgs}
            return list(engine.status(orgs)), hooks, engine.budget_status()

    rows, hooks, budget = _guarded(settings, action, ctx.debug)
    if as_json:
        plain = [_as_plain(r) for r in rows]
        for item in plain:
            hook = hooks.get(item["org_pk"])
            if hook is not None:
                item["webhooks"] = {**_as_plain(hook), "miss_rate": hook.miss_rate}
        click.echo(json.dumps(plain, default=str, indent=2))
        return
    width = _text_width()
    if not rows and orgs is not None:
        _echo_lines(_wrap(f"no synced org matches {', '.join(orgs)}", width))
    elif not rows:
        _echo_lines(_wrap("no org has been synced yet; run `rc-sync sync`", width))
    elif wide:
        _print_status_table(rows)
    else:
        for row in rows:
            _echo_lines(_status_block(row, width))
    stale = sum(row.stale_orders for row in rows)
    if stale:
        _echo_lines(
            _wrap(
                f"{stale} orders were normalized by an older rc-sync normalization version than "
                "the installed one: run `rc-sync rebuild` to re-derive them from the stored "
                "documents (no API requests).",
                width,
            )
        )
    _print_webhook_status(hooks, wide, width)
    _print_budget(budget)


def _settings_with_orgs(ctx: Ctx, orgs_text: str) -> Settings:
    """Settings with a command's own --orgs (validated like READYCLOUD_ORGS)."""
    try:
        return ctx.settings(readycloud_orgs=orgs_text)
    except ConfigError as exc:
        _fail(EXIT_CONFIG, str(exc))


def _text_width() -> int | None:
    """Columns for plain text: the terminal's (at most 100), or None (no wrapping) in a pipe."""
    if not sys.stdout.isatty():
        return None
    return min(console.width, 100)


def _wrap(text: str, width: int | None) -> list[str]:
    from rc_sync.textout import wrap

    return wrap(text, width)


def _echo_lines(lines: list[str]) -> None:
    for line in lines:
        click.echo(line)


def _status_block(row: Any, width: int | None) -> list[str]:
    """One org of `rc-sync status` as a block of lines that fits 80 columns."""
    from rc_sync.textout import block

    counts = row.row_counts or {}
    last = (
        f"{row.last_run_kind} {row.last_run_status} at {row.last_run_at:%Y-%m-%d %H:%M}Z"
        if row.last_run_at
        else "never"
    )
    children = ", ".join(f"{counts.get(t, 0):,} {t}" for t in DATA_TABLES if t != "orders")
    fields = [
        (
            "watermark",
            f"{row.watermark:%Y-%m-%d %H:%M:%S}Z" if row.watermark else "none (next sync is full)",
        ),
        ("last run", last),
        ("orders", f"{counts.get('orders', 0):,} ({row.orders_deleted:,} deleted at the source)"),
        ("children", children),
        ("open issues", f"{row.open_issues:,}"),
    ]
    if row.stale_orders:
        fields.append(("stale", f"{row.stale_orders:,} orders need `rc-sync rebuild`"))
    return block(f"org {row.org_pk}", fields, width)


def _print_status_table(rows: list[Any]) -> None:
    """`rc-sync status --wide`: one table row per org."""
    table = Table(title="rc-sync status")
    for col in (
        "org",
        "watermark",
        "last run",
        "orders",
        "boxes",
        "items",
        "addresses",
        "deleted",
        "open issues",
    ):
        table.add_column(
            col,
            justify="left" if col in {"org", "watermark", "last run"} else "right",
            no_wrap=col in {"org", "watermark"},
        )
    for row in rows:
        counts = row.row_counts or {}
        last = (
            f"{row.last_run_kind} {row.last_run_status} {row.last_run_at:%Y-%m-%d %H:%M}Z"
            if row.last_run_at
            else "never"
        )
        table.add_row(
            row.org_pk,
            f"{row.watermark:%Y-%m-%d %H:%M:%S}Z" if row.watermark else "none (next sync is full)",
            last,
            *(str(counts.get(t, 0)) for t in DATA_TABLES),
            str(row.orders_deleted),
            str(row.open_issues),
        )
    console.print(table)


def _print_webhook_status(
    hooks: dict[str, Any], wide: bool = False, width: int | None = 80
) -> None:
    """The webhook part of `rc-sync status` (only when webhooks are in use)."""
    if not hooks:
        return
    from rc_sync.textout import block

    def rate_text(st: Any) -> str:
        rate = st.miss_rate
        return "-" if rate is None else f"{rate:.1%} ({st.misses} of {st.hits + st.misses})"

    def last_text(st: Any) -> str:
        return f"{st.last_received_at:%Y-%m-%d %H:%M:%S}Z" if st.last_received_at else "never"

    def registered_text(st: Any) -> str:
        return f"{st.registered}" + (f" ({st.suspended} SUSPENDED)" if st.suspended else "")

    if wide:
        table = Table(title="webhooks (last 7 days)")
        for col in ("org", "registered", "received", "pending", "last received", "miss rate"):
            table.add_column(col, justify="left" if col in {"org", "last received"} else "right")
        for org, st in hooks.items():
            table.add_row(
                org,
                registered_text(st),
                str(st.received),
                str(st.pending),
                last_text(st),
                rate_text(st),
            )
        console.print(table)
    else:
        for org, st in hooks.items():
            fields = [
                ("registered", registered_text(st)),
                ("received", f"{st.received} in the last 7 days, {st.pending} pending"),
                ("last received", last_text(st)),
                ("miss rate", rate_text(st)),
            ]
            _echo_lines(block(f"webhooks of org {org}", fields, width))
    if any(st.suspended for st in hooks.values()):
        err_console.print(
            "[bold red]a webhook is SUSPENDED[/]: ReadyCloud stopped delivering to it. Run "
            "`rc-sync webhooks list` for details.",
            highlight=False,
            soft_wrap=True,
        )


def _print_budget(budget: dict[str, Any]) -> None:
    """The App's request budget: requests of the last hour and day by purpose, against it."""
    if budget["rate"] == "off":
        console.print(
            "API budget: off (READYCLOUD_RATE_LIMIT=off): requests are not recorded",
            highlight=False,
        )
        return
    lines = [f"API budget {budget['rate']} (App {budget['app']!r}, shared by every rc-sync run)"]
    for period in ("hour", "day"):
        used = budget[period]
        parts = ", ".join(f"{n} {name}" for name, n in sorted(used.items())) or "none"
        lines.append(
            f"  last {period}: {sum(used.values())} of {budget[period + '_budget']:,} "
            f"requests ({parts})"
        )
    tail = f"  429s seen: {budget['throttled_total']}"
    if budget["paused_for_s"] > 0:
        tail += f"; paused after a 429 for another {budget['paused_for_s']:.0f} s"
    lines.append(tail)
    console.print("\n".join(lines), highlight=False)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@pass_ctx
def plan(ctx: Ctx, as_json: bool) -> None:
    """Requests and time of a first load, a full refresh, a reconcile and a day of refreshes."""
    import json

    from rc_sync.engine import SyncEngine
    from rc_sync.progress import format_duration

    settings = _settings(ctx)

    def action() -> Any:
        with SyncEngine(settings) as engine:
            return engine.plan()

    result = _guarded(settings, action, ctx.debug)
    kinds = (
        ("first_load", "first load"),
        ("full_refresh", "full refresh"),
        ("reconcile", "reconcile"),
        ("refresh_day", "a day of refreshes (every 15 min)"),
    )
    if as_json:
        doc = {
            "rate": str(result.rate) if result.rate else "off",
            "orgs": [
                {
                    "org": o.org_pk,
                    "orders": o.orders,
                    "page": o.page,
                    "compact_page": o.compact_page,
                    "changes_per_refresh": o.changes_per_refresh,
                }
                for o in result.orgs
            ],
            "requests": {k: result.total(k) for k, _ in kinds},
            "seconds": {k: result.seconds(result.total(k)) for k, _ in kinds},
        }
        click.echo(json.dumps(doc, indent=2))
        return
    table = Table(title=f"rc-sync plan at {result.rate or 'no rate limit'}")
    for col in ("org", "orders", "per page", "first load", "reconcile", "refresh"):
        table.add_column(col, justify="left" if col == "org" else "right")
    for o in result.orgs:
        table.add_row(
            o.org_pk,
            f"{o.orders:,}",
            str(o.page),
            str(o.first_load),
            str(o.reconcile),
            str(o.refresh),
        )
    console.print(table)
    for kind, label in kinds:
        requests = result.total(kind)
        seconds = result.seconds(requests)
        when = f"about {format_duration(seconds)}" if seconds is not None else "not limited"
        console.print(f"  {label}: {requests:,} requests, {when}", highlight=False)
    share = result.refresh_share()
    if share is not None:
        console.print(
            f"  a day of refreshes uses {share:.0%} of the day's budget; one 15-minute refresh "
            f"can serve about {result.orgs_per_refresh():,} orgs like these",
            highlight=False,
        )
        if share > 0.5:
            console.print(
                "  that leaves little for backfills and reconciles: ask ReadyCloud for a higher "
                "limit, or split the orgs across Apps (each App has its own budget)",
                highlight=False,
            )


def _as_plain(row: Any) -> dict[str, Any]:
    from dataclasses import asdict, is_dataclass

    if is_dataclass(row) and not isinstance(row, type):
        return asdict(row)
    if isinstance(row, dict):
        return row
    return dict(row._mapping) if hasattr(row, "_mapping") else {"value": row}


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8765, show_default=True, type=int)
@click.option("--orgs", "n_orgs", default=2, show_default=True, type=int, help="Number of orgs.")
@click.option(
    "--orders",
    "n_orders",
    default=DEFAULT_SANDBOX_ORDERS,
    show_default=True,
    type=int,
    help="Orders across all orgs.",
)
@click.option("--seed", default=1, show_default=True, type=int)
@click.option(
    "--data-until",
    "data_until_text",
    metavar="T",
    help="End of the generated data (the two years before it), ISO 8601, UTC when no "
    "offset. Default: now. The same seed and end give the same data.",
)
@click.option("--token", default="sandbox-token", show_default=True)
@click.option(
    "--latency-ms", default=0.0, show_default=True, type=float, help="Added to every request."
)
@click.option(
    "--page-cap", default=100, show_default=True, type=int, help="Largest page the server returns."
)
@click.option("--relative-next", is_flag=True, help="Host-relative next links instead of absolute.")
@click.option(
    "--no-filters",
    is_flag=True,
    help="Silently ignore datetime filters (like an API without them).",
)
@click.option(
    "--fault-rate",
    default=0.0,
    show_default=True,
    type=float,
    help="Share of requests answered with 429/5xx/garbage.",
)
@click.option(
    "--fault-kinds",
    default="429,500,502,503,504",
    show_default=True,
    help="Comma-separated faults to inject (429, 500, 502, 503, 504, truncated, garbage, timeout).",
)
@click.option(
    "--fault-retry-after",
    "fault_retry_after",
    default="0",
    show_default=True,
    help="Retry-After seconds sent with injected 429s ('none': no header).",
)
@click.option(
    "--drip-bytes",
    default=0,
    show_default=True,
    type=int,
    help="Send every body in chunks of this many bytes (0: at once).",
)
@click.option(
    "--drip-interval",
    default=0.0,
    show_default=True,
    type=float,
    help="Seconds to pause before each dripped chunk after the first.",
)
@click.option(
    "--control",
    is_flag=True,
    help="Enable the /_sandbox/ control endpoints (create/update/delete orders).",
)
@click.option(
    "--rate-limit",
    "sandbox_rate",
    metavar="N/PERIOD",
    help="Throttle each token like ReadyCloud: at most N GETs in any sliding window "
    "(30/min, 20/4s); over it, 429. Default: no limit.",
)
@click.option(
    "--retry-after/--no-retry-after",
    default=True,
    show_default=True,
    help="Send Retry-After with the throttle's 429s.",
)
def sandbox(
    host: str,
    port: int,
    n_orgs: int,
    n_orders: int,
    seed: int,
    token: str,
    latency_ms: float,
    page_cap: int,
    relative_next: bool,
    no_filters: bool,
    fault_rate: float,
    fault_kinds: str,
    fault_retry_after: str,
    drip_bytes: int,
    drip_interval: float,
    control: bool,
    sandbox_rate: str | None,
    retry_after: bool,
    data_until_text: str | None,
) -> None:
    """Serve a local ReadyCloud-compatible API with generated data."""
    from rc_extract.budget import RateError, parse_rate
    from rc_sandbox import SandboxConfig, SandboxServer

    try:
        rate = parse_rate(sandbox_rate) if sandbox_rate else None
    except RateError as exc:
        _fail(EXIT_CONFIG, str(exc).replace("READYCLOUD_RATE_LIMIT", "--rate-limit"))
    try:
        retry_after_s = (
            None if fault_retry_after.strip().lower() == "none" else float(fault_retry_after)
        )
    except ValueError:
        _fail(
            EXIT_CONFIG,
            f"--fault-retry-after: expected seconds or 'none', got {fault_retry_after!r}",
        )
    try:
        config = SandboxConfig(
            orgs=n_orgs,
            orders=n_orders,
            seed=seed,
            data_until=_parse_when(data_until_text, "--data-until"),
            token=token,
            host=host,
            port=port,
            latency_ms=latency_ms,
            page_cap=page_cap,
            absolute_next=not relative_next,
            filters=not no_filters,
            fault_rate=fault_rate,
            fault_kinds=tuple(k.strip() for k in fault_kinds.split(",") if k.strip()),
            retry_after_s=retry_after_s,
            drip_bytes=drip_bytes,
            drip_interval_s=drip_interval,
            control=control,
            rate_limit=str(rate) if rate else None,
            rate_limit_retry_after=retry_after,
        )
    except ValueError as exc:
        _fail(EXIT_CONFIG, f"invalid sandbox option: {exc}")
    err_console.print(f"generating {n_orders} orders in {n_orgs} orgs (seed {seed})...")
    server = SandboxServer(config)
    try:
        server.start()
    except OSError as exc:
        _fail(
            EXIT_CONFIG,
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; pick another --port",
        )
    click.echo(f"READYCLOUD_BASE_URL={server.base_url}")
    click.echo(f"READYCLOUD_API_TOKEN={server.token}")
    err_console.print(
        f"sandbox serving {server.base_url}/api/v2/orgs/ — orgs: {', '.join(server.store.org_pks())}. "
        "Press Ctrl-C to stop."
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


@cli.command()
@click.option("--orders", "n_orders", default=DEFAULT_SANDBOX_ORDERS, show_default=True, type=int)
@click.option(
    "--warehouse-url",
    "demo_url",
    default="sqlite:///readycloud.db",
    show_default=True,
    help="Where the demo writes (the embedded default).",
)
@pass_ctx
def demo(ctx: Ctx, n_orders: int, demo_url: str) -> None:
    """Start the sandbox, migrate and sync into the embedded default, then show the data."""
    from rc_sync.demo import run_demo

    _guarded(
        None,
        lambda: run_demo(n_orders=n_orders, warehouse_url=demo_url, console=console),
        ctx.debug,
    )


def _org_list(text: str | None) -> list[str] | None:
    """`--orgs a,b` as a list (None when not given)."""
    orgs = [o.strip() for o in (text or "").split(",") if o.strip()]
    return orgs or None


@cli.group()
def webhooks() -> None:
    """Near-real-time changes: receive ReadyCloud webhooks (polling stays the safety net)."""


@webhooks.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8766, show_default=True, type=int)
@click.option(
    "--no-apply",
    is_flag=True,
    help="Only receive and store; apply with `rc-sync webhooks apply` elsewhere.",
)
@click.option("--ssl-certfile", help="Serve HTTPS with this certificate (PEM).")
@click.option("--ssl-keyfile", help="Private key of --ssl-certfile (PEM).")
@pass_ctx
def webhooks_serve(
    ctx: Ctx,
    host: str,
    port: int,
    no_apply: bool,
    ssl_certfile: str | None,
    ssl_keyfile: str | None,
) -> None:
    """Receive deliveries at <base>/readycloud/<org>/orders, store them durably, apply them."""
    from rc_sync.webhooks import service

    settings = _settings(ctx)

    def ready(base: str) -> None:
        err_console.print(
            f"receiving webhooks at {base}/readycloud/<org_pk>/orders"
            + (" (storing only; run `rc-sync webhooks apply`)" if no_apply else "")
            + ". Press Ctrl-C to stop.",
            highlight=False,
        )

    _guarded(
        settings,
        lambda: service.serve(
            settings,
            host=host,
            port=port,
            apply=not no_apply,
            ssl_certfile=ssl_certfile,
            ssl_keyfile=ssl_keyfile,
            on_ready=ready,
        ),
        ctx.debug,
    )


@webhooks.command("apply")
@pass_ctx
def webhooks_apply(ctx: Ctx) -> None:
    """Apply stored deliveries not yet applied (for a receiver run with --no-apply)."""
    from rc_sync.webhooks import service

    settings = _settings(ctx)
    report = _guarded(settings, lambda: service.apply_once(settings), ctx.debug)
    console.print(
        f"applied {report.events} webhook events: {report.orders_loaded} orders loaded "
        f"({report.orders_new} new, {report.orders_updated} updated, "
        f"{report.orders_unchanged} unchanged, {report.orders_skipped_older} older), "
        f"{report.orders_deleted} marked deleted, {report.detail_requests} detail requests",
        highlight=False,
    )


@webhooks.command("register")
@click.option(
    "--remote-url",
    required=True,
    help="The receiver's public base URL (https://hooks.example.com).",
)
@click.option(
    "--orgs", "org_list", help="Comma-separated org pks (default: READYCLOUD_ORGS or all)."
)
@pass_ctx
def webhooks_register(ctx: Ctx, remote_url: str, org_list: str | None) -> None:
    """Create the `orders` webhook of each org (READYCLOUD_ORGS / --orgs); store its token's hash."""
    from rc_sync.webhooks import service

    settings = _settings(ctx)
    done = _guarded(
        settings, lambda: service.register(settings, remote_url, _org_list(org_list)), ctx.debug
    )
    for reg in done:
        note = f" (replaced {reg.replaced} earlier one)" if reg.replaced else ""
        console.print(
            f"org {reg.org_pk}: ReadyCloud will call {reg.remote_url}{note}", highlight=False
        )
    console.print(
        "Run the receiver so that this URL reaches it: `rc-sync webhooks serve` (default "
        "127.0.0.1:8766), behind a TLS-terminating reverse proxy that forwards "
        f"{remote_url.rstrip('/')}/readycloud/ to it (README: Near-real-time with webhooks). "
        "Each webhook's token is stored only as a hash in the warehouse.",
        highlight=False,
    )


@webhooks.command("list")
@click.option(
    "--orgs", "org_list", help="Comma-separated org pks (default: READYCLOUD_ORGS or all)."
)
@pass_ctx
def webhooks_list(ctx: Ctx, org_list: str | None) -> None:
    """Show each org's webhooks, loudly flagging suspended ones."""
    from rc_sync.webhooks import service

    settings = _settings(ctx)
    hooks = _guarded(
        settings, lambda: service.list_webhooks(settings, _org_list(org_list)), ctx.debug
    )
    if not hooks:
        console.print("no webhooks; create them with `rc-sync webhooks register --remote-url URL`")
        return
    table = Table(title="webhooks")
    for col in ("org", "entity", "remote url", "created", "suspended", "rc-sync's"):
        table.add_column(col)
    for hook in hooks:
        suspended = (
            f"[bold red]SUSPENDED {hook.suspended_at:%Y-%m-%d %H:%M}Z[/]"
            if hook.suspended_at
            else "no"
        )
        table.add_row(
            hook.org_pk,
            hook.entity,
            hook.remote_url,
            f"{hook.created_at:%Y-%m-%d %H:%M}Z" if hook.created_at else "-",
            suspended,
            "yes" if hook.known else "no (token unknown here)",
        )
    console.print(table)
    for hook in hooks:
        if hook.suspended_at:
            base = hook.remote_url.split("/readycloud/")[0]
            err_console.print(
                f"[bold red]WEBHOOK SUSPENDED[/] for org {hook.org_pk} since "
                f"{hook.suspended_at:%Y-%m-%d %H:%M}Z: ReadyCloud stopped delivering to "
                f"{hook.remote_url} after failed deliveries. Make sure the receiver answers "
                f"there, then re-enable it with `rc-sync webhooks register --orgs {hook.org_pk} "
                f"--remote-url {base}` (this replaces the suspended webhook). Until then polling "
                "keeps the warehouse correct, only slower.",
                highlight=False,
                soft_wrap=True,
            )


@webhooks.command("remove")
@click.option("--remote-url", help="Only the webhooks that deliver to this receiver base URL.")
@click.option(
    "--orgs", "org_list", help="Comma-separated org pks (default: READYCLOUD_ORGS or all)."
)
@pass_ctx
def webhooks_remove(ctx: Ctx, remote_url: str | None, org_list: str | None) -> None:
    """Delete the webhooks rc-sync registered (READYCLOUD_ORGS / --orgs)."""
    from rc_sync.webhooks import service

    settings = _settings(ctx)
    removed = _guarded(
        settings, lambda: service.remove(settings, _org_list(org_list), remote_url), ctx.debug
    )
    console.print(f"removed {len(removed)} webhook(s)")


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="rc-sync")


if __name__ == "__main__":
    main()
