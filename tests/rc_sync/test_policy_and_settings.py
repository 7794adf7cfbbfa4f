"""One error policy (is_fatal, exit_code) and one settings object per layer."""

from __future__ import annotations

from pathlib import Path

import pytest

from rc_extract.errors import (
    APIConnectionError,
    AuthenticationError,
    InsecureTransportError,
    PermissionDeniedError,
    ServerError,
)
from rc_sync.errors import (
    EXIT_CONFIG,
    EXIT_FAILED,
    ConfigError,
    RunFailed,
    exit_code,
    is_fatal,
)
from rc_sync.settings import DagsterSettings, SandboxSettings, load_settings, truthy
from warehouse.migrate import WarehouseNotMigrated
from warehouse.settings import WarehouseSettings


@pytest.mark.parametrize(
    ("exc", "fatal", "code"),
    [
        (ConfigError("x"), True, EXIT_CONFIG),
        (WarehouseNotMigrated("x", reason="missing", current=None, head="1"), True, EXIT_CONFIG),
        (AuthenticationError(401, "/p"), True, EXIT_CONFIG),
        (PermissionDeniedError(403, "/p"), True, EXIT_CONFIG),
        (InsecureTransportError("x"), True, EXIT_CONFIG),
        (RunFailed("guard"), True, EXIT_FAILED),
        (APIConnectionError("https://h", "/p", "refused"), False, EXIT_CONFIG),
        (ServerError(503, "/p"), False, EXIT_FAILED),
        (RuntimeError("boom"), False, EXIT_FAILED),
    ],
)
def test_one_policy_for_cli_and_dagster(exc: BaseException, fatal: bool, code: int) -> None:
    """Fatal = retrying cannot help (Dagster's allow_retries=False); exit codes per CONTRACT."""
    assert is_fatal(exc) is fatal
    assert exit_code(exc) == code


@pytest.mark.parametrize(
    ("text", "value"),
    [("1", True), ("TRUE", True), (" yes ", True), ("on", True), ("0", False), ("off", False)],
)
def test_one_truthy_decider(text: str, value: bool) -> None:
    assert truthy(text) is value


def test_truthy_refuses_what_it_does_not_know() -> None:
    with pytest.raises(ValueError, match="on/off"):
        truthy("maybe")


def test_settings_compose_the_warehouse_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """rc_sync.Settings takes WAREHOUSE_* through warehouse.settings.WarehouseSettings."""
    monkeypatch.setenv("WAREHOUSE_URL", "sqlite:///from-env.db")
    monkeypatch.setenv("WAREHOUSE_SCHEMA", "analytics")
    settings = load_settings()
    assert isinstance(settings.warehouse, WarehouseSettings)
    assert settings.warehouse_url == "sqlite:///from-env.db" == WarehouseSettings().warehouse_url
    assert settings.warehouse_schema == "analytics"
    override = load_settings(warehouse_url="sqlite:///cli.db")
    assert override.warehouse.warehouse_url == "sqlite:///cli.db"
    assert override.warehouse.warehouse_schema == "analytics"


def test_bad_values_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAREHOUSE_SCHEMA", "drop table")
    with pytest.raises(ConfigError, match="WAREHOUSE_SCHEMA"):
        load_settings()
    monkeypatch.delenv("WAREHOUSE_SCHEMA")
    monkeypatch.setenv("RC_SANDBOX_PORT", "not-a-port")
    settings = load_settings()  # the sandbox part is read on first use only
    with pytest.raises(ConfigError, match="RC_SANDBOX_PORT"):
        _ = settings.sandbox


def test_sandbox_and_dagster_parts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """RC_SANDBOX* and the Dagster RC_SYNC_* variables, with blank values meaning unset."""
    for name in ("RC_SANDBOX_WAREHOUSE_URL", "RC_SYNC_START_DATE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RC_SANDBOX", "yes")
    monkeypatch.setenv("RC_SANDBOX_ORDERS", "")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    monkeypatch.setenv("RC_SYNC_SCHEDULES_ON", "on")
    monkeypatch.setenv("RC_SYNC_FRESHNESS_LIMIT_MINUTES", "90")
    sandbox, dagster = SandboxSettings(), DagsterSettings()
    assert sandbox.enabled and sandbox.orders == 1000 and sandbox.port == 8765
    assert sandbox.default_warehouse_url() == f"sqlite:///{tmp_path / 'rc-sync-sandbox.db'}"
    assert dagster.schedules_on and dagster.freshness_limit.total_seconds() == 5400
    assert dagster.start_date.isoformat() == "2020-01-01"
    assert load_settings().sandbox.enabled
