"""The executor of the code location's jobs, chosen by RC_SYNC_DAGSTER_EXECUTOR (default: Dagster's).

`default` keeps Dagster's own default (multiprocess), so `dagster dev` needs nothing set up;
`celery` runs every step as a task on a Celery worker (docs/dagster/README.md): the workers
are started with docs/dagster/celery-worker.yaml against the same broker and backend.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from rc_sync.settings import DagsterSettings


def celery_executor_config(settings: DagsterSettings) -> dict[str, Any]:
    """The `celery_executor` config: the broker and result backend of RC_SYNC_CELERY_*."""
    broker = settings.celery_broker_url.get_secret_value()
    backend = settings.celery_backend_url.get_secret_value() if settings.celery_backend_url else ""
    # The result backend defaults to the broker (Redis), as in docs/dagster/celery-worker.yaml:
    # the run worker and the Celery workers must agree on both URLs.
    return {"broker": broker, "backend": backend or broker}


def executor_from_settings(settings: DagsterSettings) -> dg.ExecutorDefinition | None:
    """The ExecutorDefinition for Definitions, or None for Dagster's default executor."""
    if settings.executor == "default":
        return None
    if settings.executor == "in_process":
        return dg.in_process_executor
    if settings.executor == "multiprocess":
        return dg.multiprocess_executor
    # celery: imported only when selected, so the default path does not load Celery.
    from dagster_celery import celery_executor

    return celery_executor.configured(celery_executor_config(settings), name="celery")
