"""The rc-sync code location: every asset, check, job, schedule and the resource, in one place."""

from __future__ import annotations

import dagster as dg

from pipelines.assets import readycloud_sync, readycloud_views
from pipelines.check import readycloud_check
from pipelines.checks import readycloud_integrity_checks, row_count_matches_api
from pipelines.executors import executor_from_settings
from pipelines.rebuild import readycloud_rebuild
from pipelines.resources import RcSyncResource
from pipelines.schedules import (
    readycloud_reconcile,
    readycloud_reconcile_daily,
    readycloud_refresh,
    readycloud_refresh_job,
)
from pipelines.webhooks import readycloud_webhook_events, webhooks_healthy
from rc_sync.settings import DagsterSettings, SandboxSettings, env_is_set, load_part

TOKEN_ENV = "READYCLOUD_API_TOKEN"  # noqa: S105 (a variable name, not a secret)
BASE_URL_ENV = "READYCLOUD_BASE_URL"


def build_resource() -> RcSyncResource:
    """The `rc_sync` resource; nothing is started or connected here (RC_SANDBOX=1 included).

    Empty fields are read from the environment (and `.env`) when a step runs. The token and
    base URL, when set, are given as EnvVar references so the UI shows their names only.
    """
    return RcSyncResource(
        base_url=dg.EnvVar(BASE_URL_ENV) if env_is_set(BASE_URL_ENV) else None,
        api_token=dg.EnvVar(TOKEN_ENV) if env_is_set(TOKEN_ENV) else None,
        sandbox=load_part(SandboxSettings).enabled,
    )


defs = dg.Definitions(
    assets=[readycloud_sync, readycloud_views],
    asset_checks=[readycloud_integrity_checks, row_count_matches_api, webhooks_healthy],
    jobs=[readycloud_refresh_job, readycloud_reconcile, readycloud_rebuild, readycloud_check],
    schedules=[readycloud_refresh, readycloud_reconcile_daily],
    sensors=[readycloud_webhook_events],
    resources={"rc_sync": build_resource()},
    # RC_SYNC_DAGSTER_EXECUTOR (default: Dagster's own); `celery` for distributed steps.
    executor=executor_from_settings(load_part(DagsterSettings)),
)
