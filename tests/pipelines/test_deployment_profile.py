"""The shipped deployment profile (docs/dagster/): valid for Dagster, and what it promises."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from pipelines_support import REPO

DOCS = REPO / "docs" / "dagster"


def _load(name: str) -> dict[str, Any]:
    return dict(yaml.safe_load((DOCS / name).read_text()))


def test_instance_profile_is_valid_and_complete(monkeypatch: pytest.MonkeyPatch) -> None:
    """dagster.yaml passes Dagster's instance schema and has each part the README describes.

    (tests/pipelines/test_scaleout.py runs a PostgreSQL instance from this same file.)
    """
    from dagster._config import process_config
    from dagster._core.instance.config import dagster_instance_config_schema

    monkeypatch.setenv("DAGSTER_PG_URL", "postgresql+psycopg2://dagster@db.internal/dagster")

    config = _load("dagster.yaml")
    result = process_config(dagster_instance_config_schema(), config)
    assert result.success, result.errors
    url = config["storage"]["postgres"]["postgres_url"]
    assert url == {"env": "DAGSTER_PG_URL"}  # the README's postgresql+psycopg2:// URL
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["concurrency"]["pools"]["default_limit"] == 1  # readycloud_api: one at a time
    monitoring = config["run_monitoring"]
    assert monitoring["enabled"] and monitoring["free_slots_after_run_end_seconds"] > 0
    assert monitoring["max_runtime_seconds"] > 0
    retries = config["run_retries"]
    assert retries["enabled"] and retries["max_retries"] >= 1
    assert retries["retry_on_asset_or_op_failure"] is False


def test_celery_worker_profile_acks_late_on_the_code_locations_broker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The worker config validates as dagster-celery's, acks late, and reads the same broker."""
    from dagster._config import process_config
    from dagster_celery import celery_executor

    monkeypatch.setenv("RC_SYNC_CELERY_BROKER_URL", "redis://broker.internal:6379/0")

    config = _load("celery-worker.yaml")["execution"]["config"]
    assert process_config(celery_executor.config_schema.config_type, config).success
    assert config["broker"] == {"env": "RC_SYNC_CELERY_BROKER_URL"}
    source = config["config_source"]
    assert source["task_acks_late"] is True
    assert source["task_reject_on_worker_lost"] is True
    assert source["worker_prefetch_multiplier"] == 1
    assert source["broker_transport_options"]["visibility_timeout"] >= 3600


def test_k8s_run_launcher_builds_run_pods_with_secrets_config_maps_and_resources(
    tmp_path: Path,
) -> None:
    """K8sRunLauncher instantiated from the shipped config; the run pod it would create."""
    from dagster._config import process_config
    from dagster_k8s import K8sRunLauncher
    from dagster_k8s.job import construct_dagster_k8s_job

    block = _load("k8s-run-launcher.yaml")["run_launcher"]
    assert (block["module"], block["class"]) == ("dagster_k8s", "K8sRunLauncher")
    checked = process_config(K8sRunLauncher.config_type(), block["config"])
    assert checked.success, checked.errors
    # No cluster here: point the client at a kubeconfig of a cluster that is never contacted.
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(_FAKE_KUBECONFIG)
    config = {**checked.value, "load_incluster_config": False, "kubeconfig_file": str(kubeconfig)}
    launcher = K8sRunLauncher(**config)

    run = dg.DagsterRun(job_name="__ASSET_JOB", run_id="0123abcd-run", tags={})
    context = launcher.get_container_context_for_run(run)
    assert context.namespace == "dagster"
    job_config = context.get_k8s_job_config(job_image="rc-sync:test", run_launcher=launcher)
    job = construct_dagster_k8s_job(
        job_config=job_config,
        args=["dagster", "api", "execute_run", "{}"],
        job_name="dagster-run-0123abcd",
        pod_name="dagster-run-0123abcd",
        component="run_worker",
        user_defined_k8s_config=context.run_k8s_config,
        labels={"dagster/run-id": run.run_id},
    )
    pod = job.spec.template.spec
    (container,) = pod.containers
    assert pod.service_account_name == "dagster"
    assert container.image == "rc-sync:test"
    sources = {
        (
            s.config_map_ref.name if s.config_map_ref else None,
            s.secret_ref.name if s.secret_ref else None,
        )
        for s in container.env_from
    }
    assert ("rc-sync-config", None) in sources and (None, "rc-sync-secrets") in sources
    assert container.resources.requests == {"cpu": "500m", "memory": "512Mi"}
    assert container.resources.limits == {"cpu": "1", "memory": "1Gi"}
    assert job.metadata.labels["app.kubernetes.io/part-of"] == "rc-sync"
    env = {e.name: e.value for e in container.env}
    assert env["DAGSTER_HOME"] == "/opt/dagster/dagster_home"
    # The token comes from the secret by reference; no value is written into the manifest.
    assert "READYCLOUD_API_TOKEN" not in env


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, "multi_or_in_process_executor"), ("celery", "celery"), ("in-process", "in_process")],
)
def test_executor_is_chosen_by_environment(
    value: str | None, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RC_SYNC_DAGSTER_EXECUTOR selects the executor of every job; unset keeps Dagster's."""
    from pipelines.executors import executor_from_settings
    from rc_sync.settings import DagsterSettings, load_part

    if value is not None:
        monkeypatch.setenv("RC_SYNC_DAGSTER_EXECUTOR", value)
    monkeypatch.setenv("RC_SYNC_CELERY_BROKER_URL", "redis://:s3cret@broker.internal:6379/2")
    settings = load_part(DagsterSettings)
    executor = executor_from_settings(settings)
    defs = dg.Definitions(
        assets=[dg.AssetSpec("x")], executor=executor
    )  # the same wiring as pipelines.definitions
    assert defs.resolve_implicit_global_asset_job_def().executor_def.name == expected
    assert "s3cret" not in repr(settings)


def test_unknown_executor_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from rc_sync.errors import ConfigError
    from rc_sync.settings import DagsterSettings, load_part

    monkeypatch.setenv("RC_SYNC_DAGSTER_EXECUTOR", "k8s_job")
    with pytest.raises(ConfigError, match="RC_SYNC_DAGSTER_EXECUTOR"):
        load_part(DagsterSettings)


_FAKE_KUBECONFIG = """
apiVersion: v1
kind: Config
clusters:
- name: none
  cluster: {server: "https://127.0.0.1:1"}
contexts:
- name: none
  context: {cluster: none, user: none}
current-context: none
users:
- name: none
  user: {token: not-a-token}
"""
