"""What a run did: per-org and per-run counts, for the CLI summary, sync_runs and Dagster metadata."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from rc_common.tables import DATA_TABLES, TableCounts


@dataclass
class OrgReport:
    """What one run did for one org."""

    org_pk: str
    mode: str
    path: str | None = None
    window_since: datetime | None = None
    window_until: datetime | None = None
    watermark_before: datetime | None = None
    watermark_after: datetime | None = None
    orders_read: int = 0
    orders_new: int = 0
    orders_updated: int = 0
    orders_unchanged: int = 0
    orders_skipped_older: int = 0
    orders_deleted: int = 0
    orders_restored: int = 0
    webhook_hits: int = 0  # changed orders a webhook had already applied (live syncs)
    webhook_misses: int = 0  # changed orders the poll had to repair although webhooks were on
    load_issues_new: int = 0
    load_issues_closed: int = 0
    history_rows: int = 0
    batches: int = 0
    days_done: int = 0
    days_skipped: int = 0
    requests: int = 0
    requests_by_purpose: dict[str, int] = field(default_factory=dict)
    estimated_requests: int | None = None  # announced before a long read (first page's count)
    retries: int = 0
    throttled: int = 0
    elapsed_s: float = 0.0
    tables: dict[str, TableCounts] = field(
        default_factory=lambda: {name: TableCounts() for name in DATA_TABLES}
    )
    # Backfills: what each UTC day (YYYY-MM-DD) wrote per table.
    days: dict[str, dict[str, TableCounts]] = field(default_factory=dict)

    @property
    def rows_written(self) -> int:
        """Rows inserted or updated across the four tables."""
        return sum(c.inserted + c.updated for c in self.tables.values())


@dataclass
class RunReport:
    """What one `rc-sync` or Dagster run did, across orgs."""

    kind: str
    status: str = "running"
    run_id: int | None = None
    orgs: list[OrgReport] = field(default_factory=list)
    requests: int = 0
    requests_by_purpose: dict[str, int] = field(default_factory=dict)
    retries: int = 0
    throttled: int = 0
    budget: str = "off"  # the rate the run drew from (READYCLOUD_RATE_LIMIT)
    budget_wait_s: float = 0.0  # time spent waiting for the budget
    elapsed_s: float = 0.0
    error: str | None = None
    # Filled when the engine describes days (SyncEngine(describe_days=True), as Dagster does):
    # the run's UTC days (a backfill's days; for a live run every day its window covered),
    # live rows of each of them per table after the run, what each backfill day wrote per
    # table, and the load issues the run opened (per table and column, with a count).
    touched_days: list[str] = field(default_factory=list)
    day_rows: dict[str, dict[str, int]] = field(default_factory=dict)
    day_writes: dict[str, dict[str, TableCounts]] = field(default_factory=dict)
    load_issues: list[dict[str, Any]] = field(default_factory=list)

    def total(self, attr: str) -> int:
        """Sum an integer OrgReport attribute over orgs."""
        return sum(int(getattr(o, attr)) for o in self.orgs)

    def table_total(self, table: str) -> TableCounts:
        """Sum one table's counts over orgs."""
        out = TableCounts()
        for org in self.orgs:
            out.add(org.tables[table])
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (datetimes as ISO strings) for sync_runs and logs."""

        def clean(value: Any) -> Any:
            if isinstance(value, datetime):
                return value.isoformat()
            if isinstance(value, dict):
                return {k: clean(v) for k, v in value.items()}
            if isinstance(value, list):
                return [clean(v) for v in value]
            return value

        result: dict[str, Any] = clean(asdict(self))
        # The day details are for catalogs; sync_runs and --json keep the run's own figures.
        for name in ("touched_days", "day_rows", "day_writes", "load_issues"):
            result.pop(name, None)
        for org in result["orgs"]:
            org.pop("days", None)
        return result
