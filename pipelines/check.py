"""The check job: `rc-sync check` from the Dagster UI (configuration, API, warehouse)."""

# No `from __future__ import annotations`: Dagster checks the `context` annotation at import.
import dagster as dg
from dagster import OpExecutionContext

from pipelines.resources import RcSyncResource
from rc_sync.check import FAIL, run_check


@dg.op(name="check_configuration_api_and_warehouse")
def check_configuration_api_and_warehouse(
    context: OpExecutionContext, rc_sync: RcSyncResource
) -> None:
    """Run `rc-sync check`: one verdict per item; the step fails when any item fails."""
    report = run_check(lambda: rc_sync.settings())
    for v in report.verdicts:
        line = f"{v.item}: {v.verdict} — {v.detail}"
        if v.verdict == FAIL:
            context.log.error(line)
        else:
            context.log.info(line)
    metadata = {v.item: f"{v.verdict}: {v.detail}" for v in report.verdicts}
    metadata["api_requests"] = str(report.requests)
    if not report.ok:
        failed = [v for v in report.verdicts if v.verdict == FAIL]
        raise dg.Failure(
            description="rc-sync check failed: "
            + "; ".join(f"{v.item}: {v.detail}" for v in failed),
            metadata=metadata,
            allow_retries=False,
        )
    context.log.info(f"all checks passed ({report.requests} API request)")


@dg.job(
    name="readycloud_check",
    description="Checks the configuration, the ReadyCloud API (one request: the orgs list) and "
    "the warehouse (reachable, migrated, writable), like `rc-sync check`; writes nothing.",
)
def readycloud_check() -> None:
    """Run the check once."""
    check_configuration_api_and_warehouse()
