"""Asset metadata: column schemas from the warehouse models and run figures from a RunReport."""

from __future__ import annotations

from typing import Any

import dagster as dg
import sqlalchemy as sa

from rc_sync.report import RunReport

DATA_TABLES = ("orders", "boxes", "items", "addresses")
VIEW_NAMES = ("order_lines", "daily_order_summary")


def _column_type(column: sa.Column[Any]) -> str:
    """A short, dialect-neutral type name for the UI."""
    try:
        return str(column.type.compile(dialect=sa.dialects.postgresql.dialect())).lower()
    except Exception:  # custom types without a PostgreSQL rendering
        return type(column.type).__name__.lower()


def table_description(name: str) -> str | None:
    """The data dictionary's one-line description of a table or view."""
    from warehouse import dictionary

    doc = dictionary.TABLES.get(name) or dictionary.VIEWS.get(name)
    return doc.description if doc else None


def table_schema(name: str) -> dg.TableSchema | None:
    """Column names, types, units and descriptions of a warehouse table or view."""
    from warehouse import dictionary, models

    table = models.metadata.tables.get(name)
    doc = dictionary.TABLES.get(name) or dictionary.VIEWS.get(name)
    columns: list[dg.TableColumn] = []
    if table is not None:
        for column in table.columns:
            col_doc = doc.columns.get(column.name) if doc else None
            columns.append(
                dg.TableColumn(
                    name=column.name,
                    type=_column_type(column),
                    description=col_doc.comment() if col_doc else None,
                    constraints=dg.TableColumnConstraints(nullable=bool(column.nullable)),
                )
            )
        key = [c.name for c in table.primary_key.columns]
        return dg.TableSchema(
            columns=columns,
            constraints=dg.TableConstraints(other=[f"primary key ({', '.join(key)})"]),
        )
    if doc is not None:  # a view: its dictionary entry is the schema
        for col_name, col_doc in doc.columns.items():
            columns.append(
                dg.TableColumn(name=col_name, type=col_doc.unit, description=col_doc.description)
            )
        return dg.TableSchema(columns=columns)
    return None


def definition_metadata(name: str) -> dict[str, Any]:
    """Static metadata of a table asset: its column schema and where it lives."""
    meta: dict[str, Any] = {"dagster/table_name": name}
    schema = table_schema(name)
    if schema is not None:
        meta["dagster/column_schema"] = schema
    return meta


def report_metadata(report: RunReport) -> dict[str, Any]:
    """Run-level figures shared by the four table assets: API traffic, watermarks, paths, time."""
    watermarks = {
        o.org_pk: {
            "before": o.watermark_before.isoformat() if o.watermark_before else None,
            "after": o.watermark_after.isoformat() if o.watermark_after else None,
        }
        for o in report.orgs
    }
    paths = sorted({o.path for o in report.orgs if o.path})
    return {
        "rc_sync/mode": report.kind,
        "rc_sync/orgs": ", ".join(o.org_pk for o in report.orgs),
        "rc_sync/orders_read": report.total("orders_read"),
        "rc_sync/orders_new": report.total("orders_new"),
        "rc_sync/orders_updated": report.total("orders_updated"),
        "rc_sync/orders_unchanged": report.total("orders_unchanged"),
        "rc_sync/load_issues_new": report.total("load_issues_new"),
        "rc_sync/days_done": report.total("days_done"),
        "rc_sync/days_skipped": report.total("days_skipped"),
        "rc_sync/api_requests": report.requests,
        "rc_sync/api_retries": report.retries,
        "rc_sync/api_429s": report.throttled,
        "rc_sync/change_detection_path": ", ".join(paths) or "n/a",
        "rc_sync/watermarks": dg.MetadataValue.json(watermarks),
        "rc_sync/elapsed_s": round(report.elapsed_s, 3),
        "rc_sync/warehouse_run_id": report.run_id if report.run_id is not None else -1,
    }


def table_metadata(report: RunReport, table: str, row_count: int) -> dict[str, Any]:
    """What one run wrote to one table, plus the run-level figures and the row count."""
    counts = report.table_total(table)
    return {
        "dagster/row_count": row_count,
        "rows_inserted": counts.inserted,
        "rows_updated": counts.updated,
        "rows_deleted": counts.deleted,
        **report_metadata(report),
    }
