"""Asset metadata: column schemas in the warehouse's dialect, and one day's figures of a run."""

from __future__ import annotations

from typing import Any

import dagster as dg

from rc_sync import catalog
from rc_sync.report import RunReport


def definition_metadata(name: str) -> dict[str, Any]:
    """Static metadata of a table or view asset: its columns, key and where it is stored."""
    info = catalog.describe(name, catalog.configured_warehouse())
    columns = [
        dg.TableColumn(
            name=c.name,
            type=c.type,
            description=c.description,
            constraints=None
            if c.nullable is None
            else dg.TableColumnConstraints(nullable=c.nullable),
        )
        for c in info.columns
    ]
    key = f"primary key ({', '.join(info.primary_key)})"
    constraints = dg.TableConstraints(other=[key]) if info.primary_key else None
    return {
        "dagster/table_name": info.qualified_name,
        "dagster/column_schema": dg.TableSchema(columns=columns, constraints=constraints),
        "rc_sync/storage": info.storage,
    }


def storage_kind() -> str:
    """The Dagster kind (icon) of the configured warehouse: sqlite or postgres."""
    dialect = catalog.dialect_of(catalog.configured_warehouse()).name
    return "postgres" if dialect == "postgresql" else dialect


def day_metadata(report: RunReport, table: str, day: str) -> dict[str, Any]:
    """One partition's own figures: the table's rows of that day and what the run wrote to it."""
    meta: dict[str, Any] = {
        "dagster/row_count": report.day_rows.get(day, {}).get(table, 0),
        "rc_sync/mode": report.kind,
    }
    writes = report.day_writes.get(day)
    if writes is not None:  # backfills know what each day wrote; refresh runs only in total
        counts = writes[table]
        meta.update(
            rows_inserted=counts.inserted, rows_updated=counts.updated, rows_deleted=counts.deleted
        )
    return meta


def run_tags(report: RunReport) -> dict[str, str]:
    """Run-level totals (API traffic, orders, time), recorded on the run rather than each day."""
    paths = sorted({o.path for o in report.orgs if o.path})
    return {
        "rc_sync/orgs": ",".join(o.org_pk for o in report.orgs),
        "rc_sync/orders_read": str(report.total("orders_read")),
        "rc_sync/orders_new": str(report.total("orders_new")),
        "rc_sync/orders_updated": str(report.total("orders_updated")),
        "rc_sync/orders_unchanged": str(report.total("orders_unchanged")),
        "rc_sync/load_issues_new": str(report.total("load_issues_new")),
        "rc_sync/days_done": str(report.total("days_done")),
        "rc_sync/days_skipped": str(report.total("days_skipped")),
        "rc_sync/api_requests": str(report.requests),
        "rc_sync/api_retries": str(report.retries),
        "rc_sync/api_429s": str(report.throttled),
        "rc_sync/api_requests_by_purpose": ",".join(
            f"{purpose}={count}" for purpose, count in sorted(report.requests_by_purpose.items())
        )
        or "none",
        "rc_sync/api_budget": report.budget,
        "rc_sync/api_budget_wait_s": f"{report.budget_wait_s:.1f}",
        "rc_sync/change_detection_path": ",".join(paths) or "n/a",
        "rc_sync/elapsed_s": f"{report.elapsed_s:.1f}",
    }
