"""The rc-sync code location: every asset, check, job, schedule and resource in one Definitions."""

from __future__ import annotations

import logging
import os

import dagster as dg

from pipelines import sandbox_mode
from pipelines.assets import readycloud_sync, readycloud_views
from pipelines.checks import readycloud_integrity_checks, row_count_matches_api
from pipelines.resources import TOKEN_ENV, ReadyCloudResource, WarehouseResource
from pipelines.schedules import (
    readycloud_reconcile,
    readycloud_reconcile_daily,
    readycloud_refresh,
    readycloud_refresh_job,
)
from pipelines.webhooks import readycloud_webhook_events, webhooks_healthy

log = logging.getLogger(__name__)


def _env(name: str) -> str | None:
    """An environment variable's value, or None when unset or blank."""
    value = os.environ.get(name, "").strip()
    return value or None


def _orgs() -> list[str] | None:
    """READYCLOUD_ORGS as a list (None = every org the token sees)."""
    value = _env("READYCLOUD_ORGS")
    return [o.strip() for o in value.split(",") if o.strip()] if value else None


def build_resources() -> dict[str, dg.ConfigurableResource]:
    """The `readycloud` and `warehouse` resources, pointed at the sandbox when RC_SANDBOX=1."""
    if sandbox_mode.enabled():
        sandbox = sandbox_mode.ensure_sandbox()
        if _env("READYCLOUD_BASE_URL") or _env(TOKEN_ENV):
            log.warning("RC_SANDBOX=1: READYCLOUD_BASE_URL/READYCLOUD_API_TOKEN are ignored")
        readycloud = ReadyCloudResource(
            base_url=sandbox.base_url,
            api_token=sandbox.token,  # the sandbox's public, fixed token, not a secret
            orgs=_orgs(),
        )
        warehouse = WarehouseResource(
            url=sandbox_mode.warehouse_url(),
            schema=_env("WAREHOUSE_SCHEMA"),
            auto_migrate=True,
        )
        return {"readycloud": readycloud, "warehouse": warehouse}
    # Unset values stay None: rc_sync's Settings then applies the environment, a .env file
    # and the contract's defaults, and a run without a token fails saying what to set.
    readycloud = ReadyCloudResource(
        base_url=_env("READYCLOUD_BASE_URL"),
        api_token=dg.EnvVar(TOKEN_ENV) if _env(TOKEN_ENV) else None,
        orgs=_orgs(),
    )
    warehouse = WarehouseResource(url=_env("WAREHOUSE_URL"), schema=_env("WAREHOUSE_SCHEMA"))
    return {"readycloud": readycloud, "warehouse": warehouse}


defs = dg.Definitions(
    assets=[readycloud_sync, readycloud_views],
    asset_checks=[readycloud_integrity_checks, row_count_matches_api, webhooks_healthy],
    jobs=[readycloud_refresh_job, readycloud_reconcile],
    schedules=[readycloud_refresh, readycloud_reconcile_daily],
    sensors=[readycloud_webhook_events],
    resources=build_resources(),
)
