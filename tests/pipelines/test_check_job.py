"""The `readycloud_check` job: `rc-sync check` in the Dagster code location."""

from __future__ import annotations

from typing import Any

import dagster as dg
from pipelines_support import resources_for


def test_check_job_passes_against_the_sandbox(sandbox: Any, target: Any) -> None:
    """Configuration, API (one request) and the warehouse are fine: the job succeeds."""
    from pipelines.check import readycloud_check
    from pipelines.definitions import defs

    assert defs.resolve_job_def("readycloud_check").description
    before = sandbox.stats.snapshot()["requests"]
    with dg.instance_for_test() as instance:
        result = readycloud_check.execute_in_process(
            instance=instance, resources=resources_for(sandbox, target), raise_on_error=False
        )
    # The resource migrates on first use elsewhere; the check writes nothing, so an empty
    # SQLite passes (sync migrates it) and an empty PostgreSQL schema does not.
    if target.dialect == "sqlite":
        assert result.success
    else:
        assert not result.success
        failure = result.failure_data_for_node("check_configuration_api_and_warehouse")
        assert failure is not None and "rc-sync migrate" in (failure.error.message or "")
    assert sandbox.stats.snapshot()["requests"] - before == 1


def test_check_job_fails_with_a_bad_token_without_showing_it(sandbox: Any, sqlite_target) -> None:
    """A refused token fails the step with the API verdict; the token is in no event."""
    from pipelines.check import readycloud_check
    from pipelines.resources import RcSyncResource

    secret = "dagster-wrong-token-51aa0e"
    resource = RcSyncResource(
        base_url=sandbox.base_url,
        api_token=secret,
        warehouse_url=sqlite_target.url,
        warehouse_schema=sqlite_target.schema,
    )
    with dg.instance_for_test() as instance:
        result = readycloud_check.execute_in_process(
            instance=instance, resources={"rc_sync": resource}, raise_on_error=False
        )
        assert not result.success
        failure = result.failure_data_for_node("check_configuration_api_and_warehouse")
        assert failure is not None and "READYCLOUD_API_TOKEN" in (failure.error.message or "")
        logs = instance.all_logs(result.run_id)
        assert any(entry.dagster_event and entry.dagster_event.is_step_failure for entry in logs)
        assert all(secret not in str(entry) for entry in logs)
