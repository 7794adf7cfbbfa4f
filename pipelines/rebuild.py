"""The rebuild job: re-derive the typed tables from stored documents (no API request)."""

# No `from __future__ import annotations`: Dagster checks the `context` annotation at import.
import dagster as dg
from dagster import OpExecutionContext

from pipelines.assets import POOL, TABLE_KEYS
from pipelines.resources import RcSyncResource


@dg.op(name="rebuild_from_stored_documents", pool=POOL)
def rebuild_from_stored_documents(context: OpExecutionContext, rc_sync: RcSyncResource) -> None:
    """Run `rc-sync rebuild`: orders normalized by an older version are re-derived from `raw`."""
    with rc_sync.engine(api=False) as engine:  # no token needed: the warehouse only
        report = engine.rebuild()
    changed = {t: report.table_total(t).updated for t in ("orders", "boxes", "items", "addresses")}
    context.log.info(
        f"rebuild: {report.total('orders_read')} orders re-derived, rows changed {changed}, "
        f"load issues +{report.total('load_issues_new')}/-{report.total('load_issues_closed')}"
    )
    context.log_event(
        dg.AssetObservation(
            asset_key=TABLE_KEYS["orders"],
            description="Rebuild from the stored documents (no API request).",
            metadata={
                "orders_rederived": report.total("orders_read"),
                **{f"rows_changed_{t}": n for t, n in changed.items()},
                "history_rows_retyped": report.total("history_rows"),
                "load_issues_opened": report.total("load_issues_new"),
                "load_issues_closed": report.total("load_issues_closed"),
                "rc_sync/elapsed_s": round(report.elapsed_s, 3),
            },
        )
    )


@dg.job(
    name="readycloud_rebuild",
    description="Re-derives orders, boxes, items, addresses and history from the stored "
    "documents after a normalization upgrade (`rc-sync rebuild`); makes no API request.",
)
def readycloud_rebuild() -> None:
    """Run the rebuild once."""
    rebuild_from_stored_documents()
