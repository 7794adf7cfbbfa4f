"""The resume key: a backfill run, its re-executions and its retries share one key."""

from __future__ import annotations

import uuid

import dagster as dg
import pytest

from pipelines.resume import resume_key


def _run(
    instance: dg.DagsterInstance,
    root_run_id: str | None = None,
    parent_run_id: str | None = None,
    **tags: str,
) -> dg.DagsterRun:
    """A run stored in the instance with these tags (`__` in a name stands for `/`)."""
    run = dg.DagsterRun(
        job_name="__ASSET_JOB",
        run_id=str(uuid.uuid4()),
        tags={k.replace("__", "/"): v for k, v in tags.items()},
        root_run_id=root_run_id,
        parent_run_id=parent_run_id,
    )
    return instance.add_run(run)


def _child(instance: dg.DagsterInstance, parent: dg.DagsterRun, **tags: str) -> dg.DagsterRun:
    """A re-execution of `parent` the way Dagster records it (parent and root run ids)."""
    root = parent.root_run_id or parent.run_id
    return _run(
        instance,
        root_run_id=root,
        parent_run_id=parent.run_id,
        dagster__parent_run_id=parent.run_id,
        dagster__root_run_id=root,
        **tags,
    )


@pytest.fixture
def instance() -> dg.DagsterInstance:
    with dg.instance_for_test() as instance:
        yield instance


def test_backfill_run_uses_its_backfill_id(instance: dg.DagsterInstance) -> None:
    run = _run(instance, dagster__backfill="bf1")
    assert resume_key(run, instance) == "dagster-backfill:bf1"


def test_reexecution_without_backfill_tag_resumes_the_backfill(
    instance: dg.DagsterInstance,
) -> None:
    """The UI's "re-execute from failure" drops dagster/backfill; the key must not change."""
    root = _run(instance, dagster__backfill="bf1")
    first = _child(instance, root)
    second = _child(instance, first)  # a re-execution of the re-execution
    assert "dagster/backfill" not in first.tags
    assert resume_key(first, instance) == "dagster-backfill:bf1"
    assert resume_key(second, instance) == "dagster-backfill:bf1"


def test_automatic_retry_keeps_the_key_with_or_without_backfill_tags(
    instance: dg.DagsterInstance,
) -> None:
    """A run retry copies the backfill tags only while the backfill is requested."""
    root = _run(instance, dagster__backfill="bf1")
    with_tags = _child(instance, root, dagster__backfill="bf1", dagster__retry_number="1")
    without = _child(instance, root, dagster__retry_number="1")
    assert (
        resume_key(with_tags, instance) == resume_key(without, instance) == "dagster-backfill:bf1"
    )


def test_reexecuted_backfill_resumes_its_origin(instance: dg.DagsterInstance) -> None:
    """A backfill re-executed from the backfill page gets a new id and the root backfill's."""
    run = _run(
        instance,
        dagster__backfill="bf2",
        dagster__parent_backfill_id="bf1",
        dagster__root_backfill_id="bf1",
    )
    assert resume_key(run, instance) == "dagster-backfill:bf1"


def test_runs_outside_backfills_use_the_root_run(instance: dg.DagsterInstance) -> None:
    """`dagster asset materialize --partition-range` and its re-executions share the root run."""
    root = _run(instance)
    child = _child(instance, root)
    assert resume_key(root, instance) == f"dagster-run:{root.run_id}"
    assert resume_key(child, instance) == f"dagster-run:{root.run_id}"


def test_deleted_root_falls_back_to_the_parent(instance: dg.DagsterInstance) -> None:
    root = _run(instance, dagster__backfill="bf1")
    first = _child(instance, root, dagster__backfill="bf1")
    second = _child(instance, first)
    instance.delete_run(root.run_id)
    assert resume_key(second, instance) == "dagster-backfill:bf1"


def test_two_backfills_of_the_same_days_do_not_share_progress(
    instance: dg.DagsterInstance,
) -> None:
    """A new backfill re-reads its days: only one lineage resumes."""
    a, b = _run(instance, dagster__backfill="a"), _run(instance, dagster__backfill="b")
    assert resume_key(a, instance) != resume_key(b, instance)
