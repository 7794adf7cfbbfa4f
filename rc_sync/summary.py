"""The end-of-run summary the command line and the demo print."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from rc_common.tables import DATA_TABLES
from rc_sync.report import RunReport


def print_report(report: RunReport, console: Console, *, as_json: bool = False) -> None:
    """The end-of-run summary: per org and per table."""
    import json

    if as_json:
        print(json.dumps(report.to_dict(), indent=2, default=str))
        return
    table = Table(title=f"rc-sync {report.kind}: {report.status}")
    cols = ("org", "read", "new", "updated", "unchanged", "issues", "requests", "time")
    for col in cols:
        table.add_column(col, justify="left" if col == "org" else "right")
    for o in report.orgs:
        table.add_row(
            o.org_pk,
            str(o.orders_read),
            str(o.orders_new),
            str(o.orders_updated),
            str(o.orders_unchanged),
            str(o.load_issues_new),
            str(o.requests),
            f"{o.elapsed_s:.1f}s",
        )
    console.print(table)
    for o in report.orgs:
        mark = o.watermark_after.isoformat(timespec="seconds") if o.watermark_after else "unchanged"
        console.print(f"  {o.org_pk}: {o.mode}, {o.path or '-'}, watermark {mark}", highlight=False)
    rows = Table(title="rows written")
    for col in ("table", "inserted", "updated", "deleted"):
        rows.add_column(col, justify="left" if col == "table" else "right")
    for name in DATA_TABLES:
        t = report.table_total(name)
        rows.add_row(name, str(t.inserted), str(t.updated), str(t.deleted))
    console.print(rows)
    console.print(
        f"{report.total('orders_read')} orders read, {report.requests} requests "
        f"({report.retries} retries, {report.throttled} throttled), "
        f"{report.total('load_issues_new')} new load issues, {report.elapsed_s:.1f}s"
    )
    console.print(requests_line(report), highlight=False)


def requests_line(report: RunReport) -> str:
    """Requests by purpose and the budget they came from, e.g. `requests: 12 list, 2 probe`."""
    parts = ", ".join(f"{n} {name}" for name, n in report.requests_by_purpose.items()) or "none"
    waited = (
        f", {report.budget_wait_s:.0f}s waiting for budget" if report.budget_wait_s >= 1 else ""
    )
    return f"requests: {parts} (budget {report.budget}{waited})"
