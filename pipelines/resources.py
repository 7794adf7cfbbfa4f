"""The one Dagster resource: rc-sync's settings for a run, yielding the SyncEngine.

Every field is optional: what a field leaves empty comes from the environment (or `.env`)
through `rc_sync.settings`, the same classes the command line reads. The resource is the only
place where errors become `dg.Failure`: errors that retrying cannot fix (`is_fatal`) fail the
step at once; the rest go to the asset's retry policy.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from rc_sync.engine import SyncEngine
from rc_sync.errors import ConfigError, is_fatal
from rc_sync.sandbox import ensure_sandbox
from rc_sync.settings import Settings, load_settings

SETUP_HINT = (
    "Set READYCLOUD_API_TOKEN (and READYCLOUD_BASE_URL, READYCLOUD_ORGS, WAREHOUSE_URL, "
    "WAREHOUSE_SCHEMA as needed) in the environment of the Dagster code location, or start "
    "it with RC_SANDBOX=1 to use the built-in sandbox."
)


class RcSyncResource(dg.ConfigurableResource):
    """ReadyCloud API and warehouse for rc-sync runs (empty fields: environment, `.env`).

    base_url (READYCLOUD_BASE_URL), api_token (READYCLOUD_API_TOKEN, given as an EnvVar so it
    is never shown), orgs (READYCLOUD_ORGS), max_rps (RC_SYNC_MAX_RPS), concurrency
    (RC_SYNC_CONCURRENCY), warehouse_url (WAREHOUSE_URL), warehouse_schema (WAREHOUSE_SCHEMA),
    auto_migrate (default: only the embedded SQLite warehouse), sandbox (RC_SANDBOX: use the
    built-in sandbox, started when a step first needs it).
    """

    base_url: str | None = None
    api_token: str | None = None
    orgs: list[str] | None = None
    max_rps: float | None = None
    concurrency: int | None = None
    warehouse_url: str | None = None
    warehouse_schema: str | None = None
    auto_migrate: bool | None = None
    sandbox: bool = False

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """In sandbox mode, make sure the sandbox listens before the step starts."""
        if self.sandbox:
            with self._failures():
                ensure_sandbox(load_settings().sandbox)

    @contextmanager
    def engine(self, *, describe_days: bool = False, api: bool = True) -> Iterator[SyncEngine]:
        """A SyncEngine for one step (closed afterwards); errors become Dagster failures."""
        with self._failures():
            settings = self.settings(api=api)
            auto_migrate = True if self.sandbox else self.auto_migrate
            with SyncEngine(
                settings, auto_migrate=auto_migrate, describe_days=describe_days
            ) as engine:
                yield engine

    def settings(self, *, api: bool = True) -> Settings:
        """rc_sync Settings: this resource's values over the environment's (and `.env`).

        api=False: for warehouse-only work (sensors, checks without a token); sandbox mode
        then starts nothing.
        """
        environment = load_settings()
        overrides: dict[str, object] = {
            "readycloud_base_url": self.base_url,
            "readycloud_api_token": self.api_token,
            "readycloud_orgs": ",".join(self.orgs) if self.orgs else None,
            "max_rps": self.max_rps,
            "concurrency": self.concurrency,
            "warehouse_url": self.warehouse_url,
            "warehouse_schema": self.warehouse_schema,
        }
        if self.sandbox:
            if api:
                info = ensure_sandbox(environment.sandbox)
                overrides["readycloud_base_url"] = info.base_url
                overrides["readycloud_api_token"] = info.token  # the sandbox's public token
            if "rate_limit" not in environment.model_fields_set:
                overrides["rate_limit"] = "off"  # the built-in sandbox is not throttled
            if (
                not self.warehouse_url
                and "warehouse_url" not in environment.warehouse.model_fields_set
            ):
                overrides["warehouse_url"] = environment.sandbox.default_warehouse_url()
        return load_settings(**overrides)

    @contextmanager
    def _failures(self) -> Iterator[None]:
        """The one place errors become dg.Failure: fatal ones are not retried."""
        try:
            yield
        except dg.Failure:
            raise
        except Exception as exc:
            if not is_fatal(exc):
                raise
            hint = f" {SETUP_HINT}" if isinstance(exc, ConfigError) else ""
            raise dg.Failure(description=f"{exc}{hint}", allow_retries=False) from None
