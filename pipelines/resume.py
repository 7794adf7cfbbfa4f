"""The resume key of a backfill run: one key for a run and every re-execution or retry of it.

The engine records each finished day of a backfill under a key (warehouse table
`backfill_progress`) and skips the days already recorded when it runs again with the same
key. Dagster tags the runs of one lineage differently: the backfill daemon's run carries
`dagster/backfill`; an automatic run retry keeps it only while the backfill is still
requested; a re-execution from the UI ("from failure" or "all steps") carries only
`dagster/parent_run_id` and `dagster/root_run_id`; a re-executed backfill gets a new
`dagster/backfill` plus `dagster/root_backfill_id`. The key is therefore taken from the
lineage's origin: the root backfill, else the backfill of the run or of its root (or parent)
run, else the root run itself.
"""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg

BACKFILL_TAG = "dagster/backfill"
ROOT_BACKFILL_TAG = "dagster/root_backfill_id"
PARENT_RUN_TAG = "dagster/parent_run_id"


def resume_key(run: dg.DagsterRun, instance: dg.DagsterInstance | None) -> str:
    """`dagster-backfill:<origin backfill id>` or `dagster-run:<root run id>` for this run."""
    for member in _lineage(run, instance):
        backfill = member.tags.get(ROOT_BACKFILL_TAG) or member.tags.get(BACKFILL_TAG)
        if backfill:
            return f"dagster-backfill:{backfill}"
    return f"dagster-run:{run.root_run_id or run.run_id}"


def _lineage(run: dg.DagsterRun, instance: dg.DagsterInstance | None) -> Iterator[dg.DagsterRun]:
    """The run, then its root run and its parent run as far as the instance still has them."""
    yield run
    if instance is None:
        return
    seen = {run.run_id}
    for run_id in (run.root_run_id, run.parent_run_id or run.tags.get(PARENT_RUN_TAG)):
        if not run_id or run_id in seen:
            continue
        seen.add(run_id)
        ancestor = instance.get_run_by_id(run_id)
        if ancestor is not None:
            yield ancestor
