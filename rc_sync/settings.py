"""Configuration from environment variables and a `.env` file (names from CONTRACT.md).

The only module of rc_sync (with `warehouse.settings` for WAREHOUSE_*) that reads the
environment: `Settings` owns every READYCLOUD_*, RC_SYNC_* and RC_SANDBOX* variable and
composes the warehouse's own `WarehouseSettings`; the sandbox and Dagster parts are small
classes of their own so that the code location can read them at import without needing a
token or a valid API configuration.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AliasChoices,
    BeforeValidator,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from rc_common.defaults import DEFAULT_SANDBOX_ORDERS
from rc_common.flags import flag_value
from rc_common.paths import DEFAULT_BASE_URL, validate_org_pk
from rc_common.redact import TokenFormatError, check_token
from rc_extract.budget import DEFAULT_RATE, Rate, RateError, parse_rate
from rc_sync.errors import ConfigError
from warehouse.settings import WarehouseSettings

log = logging.getLogger(__name__)


def truthy(value: Any) -> bool:
    """On/off settings (RC_SANDBOX, RC_SYNC_SCHEDULES_ON): rc_common.flags decides; blank = off."""
    if isinstance(value, bool):
        return value
    text = str(value)
    decided = flag_value(text) if text.strip() else False
    if decided is None:
        raise ValueError(f"{value!r} is not on/off (use 1/0, true/false, yes/no, on/off)")
    return decided


Flag = Annotated[bool, BeforeValidator(truthy)]


def _env(name: str, *env: str) -> AliasChoices:
    """Accept a field by its Python name and by its environment variable name(s)."""
    return AliasChoices(name, *env)


def env_is_set(name: str) -> bool:
    """True when the process environment has a non-blank value for `name`."""
    return bool(os.environ.get(name, "").strip())


_CONFIG = SettingsConfigDict(
    env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
)


class Settings(BaseSettings):
    """Everything rc-sync can be told; each field is an environment variable (see README)."""

    model_config = _CONFIG

    readycloud_base_url: str = Field(
        DEFAULT_BASE_URL, validation_alias=_env("readycloud_base_url", "READYCLOUD_BASE_URL")
    )
    readycloud_api_token: SecretStr | None = Field(
        None, validation_alias=_env("readycloud_api_token", "READYCLOUD_API_TOKEN"), repr=False
    )
    readycloud_orgs: str | None = Field(
        None, validation_alias=_env("readycloud_orgs", "READYCLOUD_ORGS")
    )
    # None = ask for the largest page (1000) and use whatever the server honours.
    page_size: int | None = Field(
        None, ge=1, le=1000, validation_alias=_env("page_size", "RC_SYNC_PAGE_SIZE")
    )
    concurrency: int = Field(
        4, ge=1, le=32, validation_alias=_env("concurrency", "RC_SYNC_CONCURRENCY")
    )
    rate_limit: str = Field(
        DEFAULT_RATE, validation_alias=_env("rate_limit", "READYCLOUD_RATE_LIMIT")
    )
    readycloud_app: str = Field(
        "default", min_length=1, validation_alias=_env("readycloud_app", "READYCLOUD_APP")
    )
    # Deprecated: RC_SYNC_MAX_RPS=R stands for READYCLOUD_RATE_LIMIT=<60R>/min when that is unset.
    max_rps: float | None = Field(None, gt=0, validation_alias=_env("max_rps", "RC_SYNC_MAX_RPS"))
    overlap_s: float = Field(
        600.0, ge=0, validation_alias=_env("overlap_s", "RC_SYNC_OVERLAP_SECONDS")
    )
    timeout_s: float = Field(30.0, gt=0, validation_alias=_env("timeout_s", "RC_SYNC_TIMEOUT"))
    deadline_s: float = Field(300.0, gt=0, validation_alias=_env("deadline_s", "RC_SYNC_DEADLINE"))
    lock_timeout_s: float = Field(
        60.0, ge=0, validation_alias=_env("lock_timeout_s", "RC_SYNC_LOCK_TIMEOUT")
    )
    clock_skew_warning_s: float = Field(
        60.0, gt=0, validation_alias=_env("clock_skew_warning_s", "RC_SYNC_CLOCK_SKEW_WARNING")
    )
    batch_orders: int = Field(
        1000, ge=1, le=100_000, validation_alias=_env("batch_orders", "RC_SYNC_BATCH_ORDERS")
    )
    webhook_retention_days: float = Field(
        7.0,
        gt=0,
        validation_alias=_env("webhook_retention_days", "RC_SYNC_WEBHOOK_RETENTION_DAYS"),
    )
    webhook_max_body_bytes: int = Field(
        5 * 1024 * 1024,
        ge=1024,
        validation_alias=_env("webhook_max_body_bytes", "RC_SYNC_WEBHOOK_MAX_BODY_BYTES"),
    )
    history: Flag = Field(True, validation_alias=_env("history", "RC_SYNC_HISTORY"))
    # None: one worker process where a second core is available (warehouse.normalize_pool).
    normalize_workers: int | None = Field(
        None,
        ge=0,
        le=8,
        validation_alias=_env("normalize_workers", "RC_SYNC_NORMALIZE_WORKERS"),
    )

    @field_validator("readycloud_base_url")
    @classmethod
    def _strip_base_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError(
                "READYCLOUD_BASE_URL must start with https:// (or http:// for a local sandbox)"
            )
        return value

    @field_validator("rate_limit")
    @classmethod
    def _check_rate(cls, value: str) -> str:
        try:
            parse_rate(value)
        except RateError as exc:
            raise ValueError(str(exc)) from None
        return value.strip()

    @field_validator("readycloud_orgs")
    @classmethod
    def _check_orgs(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None  # empty = unset: every org the token can see
        for org in value.split(","):
            try:
                validate_org_pk(org)
            except ValueError as exc:
                raise ValueError(
                    f"READYCLOUD_ORGS / --orgs: {exc}"
                    if org.strip()
                    else "READYCLOUD_ORGS / --orgs has an empty org pk (two commas in a row, or a "
                    "comma at either end); list org pks separated by single commas"
                ) from None
        return value

    @property
    def orgs(self) -> list[str] | None:
        """The org pks from READYCLOUD_ORGS, or None for every org the token can see."""
        if not self.readycloud_orgs:
            return None
        orgs = [o.strip() for o in self.readycloud_orgs.split(",") if o.strip()]
        return orgs or None

    # The composed parts (set by load_settings; the defaults read the environment).
    _warehouse: WarehouseSettings = PrivateAttr(
        default_factory=lambda: WarehouseSettings()  # type: ignore[call-arg]
    )
    # Read on first use only: a bad RC_SANDBOX_PORT must not stop `rc-sync sync`.
    _sandbox: SandboxSettings | None = PrivateAttr(None)
    _dagster: DagsterSettings | None = PrivateAttr(None)

    @property
    def warehouse(self) -> WarehouseSettings:
        """The warehouse's settings (WAREHOUSE_URL, WAREHOUSE_SCHEMA)."""
        return self._warehouse

    @property
    def sandbox(self) -> SandboxSettings:
        """The built-in sandbox's settings (RC_SANDBOX*)."""
        if self._sandbox is None:
            self._sandbox = load_part(SandboxSettings)
        return self._sandbox

    @property
    def dagster(self) -> DagsterSettings:
        """The Dagster code location's settings (partitions, schedules, checks)."""
        if self._dagster is None:
            self._dagster = load_part(DagsterSettings)
        return self._dagster

    @property
    def warehouse_url(self) -> str:
        """WAREHOUSE_URL."""
        return self._warehouse.warehouse_url

    @property
    def warehouse_schema(self) -> str:
        """WAREHOUSE_SCHEMA."""
        return self._warehouse.warehouse_schema

    @property
    def rate(self) -> Rate | None:
        """The App's request budget (None = off); RC_SYNC_MAX_RPS only when no rate is given."""
        if self.max_rps is not None and "rate_limit" not in self.model_fields_set:
            per_minute = max(1, round(self.max_rps * 60))
            log.warning(
                "RC_SYNC_MAX_RPS is deprecated; using READYCLOUD_RATE_LIMIT=%d/min instead",
                per_minute,
            )
            return Rate(per_minute, 60.0)
        return parse_rate(self.rate_limit)

    @property
    def is_sqlite(self) -> bool:
        """True when the warehouse is an embedded SQLite database."""
        return self._warehouse.is_sqlite

    def require_token(self) -> str:
        """The API token, or a ConfigError that says how to provide one."""
        token = self.readycloud_api_token.get_secret_value() if self.readycloud_api_token else ""
        try:
            token = check_token(token)
        except TokenFormatError as exc:
            raise ConfigError(str(exc)) from None
        if not token:
            raise ConfigError(
                "READYCLOUD_API_TOKEN is not set: create an API token in ReadyCloud "
                "(an App with the order-read_only scope, see README 'Getting a token') and "
                "export it or put READYCLOUD_API_TOKEN=... in a .env file. "
                "To try rc-sync without an account, run `rc-sync demo`."
            )
        return token.strip()


class LogSettings(BaseSettings):
    """How the command line writes its log lines (read before anything else can fail)."""

    model_config = SettingsConfigDict(**_CONFIG, env_ignore_empty=True)

    log_format: Literal["human", "json"] = Field(
        "human", validation_alias=_env("log_format", "RC_SYNC_LOG_FORMAT")
    )

    @field_validator("log_format", mode="before")
    @classmethod
    def _format_name(cls, value: Any) -> Any:
        return str(value).strip().lower() if value is not None else value


def load_log_settings(**overrides: object) -> LogSettings:
    """RC_SYNC_LOG_FORMAT (and the --log-format option), as a ConfigError on a bad value."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        return LogSettings(**clean)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(
            f"invalid configuration: {_problems(exc, env_names(LogSettings))}"
        ) from None


class SandboxSettings(BaseSettings):
    """The built-in sandbox behind Dagster (RC_SANDBOX=1) and where its warehouse goes."""

    model_config = SettingsConfigDict(**_CONFIG, env_ignore_empty=True)

    enabled: Flag = Field(False, validation_alias=_env("enabled", "RC_SANDBOX"))
    port: int = Field(8765, ge=1, le=65535, validation_alias=_env("port", "RC_SANDBOX_PORT"))
    orders: int = Field(
        DEFAULT_SANDBOX_ORDERS, ge=1, validation_alias=_env("orders", "RC_SANDBOX_ORDERS")
    )
    # End of the generated data (ISO 8601, UTC when no offset); unset: now.
    data_until: str | None = Field(
        None, validation_alias=_env("data_until", "RC_SANDBOX_DATA_UNTIL")
    )
    warehouse_url: str | None = Field(
        None, validation_alias=_env("sandbox_warehouse_url", "RC_SANDBOX_WAREHOUSE_URL")
    )
    dagster_home: str | None = Field(None, validation_alias=_env("dagster_home", "DAGSTER_HOME"))

    def default_warehouse_url(self) -> str:
        """RC_SANDBOX_WAREHOUSE_URL, else SQLite next to the Dagster instance (or here)."""
        if self.warehouse_url and self.warehouse_url.strip():
            return self.warehouse_url.strip()
        folder = Path(self.dagster_home) if self.dagster_home else Path.cwd()
        return f"sqlite:///{(folder / 'rc-sync-sandbox.db').resolve()}"


class DagsterSettings(BaseSettings):
    """What the Dagster code location reads when it loads: partitions, schedules, checks."""

    model_config = SettingsConfigDict(**_CONFIG, env_ignore_empty=True)

    start_date: date = Field(
        date(2020, 1, 1), validation_alias=_env("start_date", "RC_SYNC_START_DATE")
    )
    refresh_cron: str = Field(
        "*/15 * * * *", validation_alias=_env("refresh_cron", "RC_SYNC_REFRESH_CRON")
    )
    reconcile_cron: str = Field(
        "30 2 * * *", validation_alias=_env("reconcile_cron", "RC_SYNC_RECONCILE_CRON")
    )
    schedules_on: Flag = Field(False, validation_alias=_env("schedules_on", "RC_SYNC_SCHEDULES_ON"))
    freshness_limit_minutes: float = Field(
        60.0,
        gt=0,
        validation_alias=_env("freshness_limit_minutes", "RC_SYNC_FRESHNESS_LIMIT_MINUTES"),
    )

    # Distributed runs (docs/dagster/README.md): which executor the code location's jobs use,
    # and for Celery the broker and result backend (the same URLs the workers are started with).
    executor: Literal["default", "multiprocess", "in_process", "celery"] = Field(
        "default", validation_alias=_env("executor", "RC_SYNC_DAGSTER_EXECUTOR")
    )
    celery_broker_url: SecretStr = Field(
        SecretStr("redis://127.0.0.1:6379/0"),
        validation_alias=_env("celery_broker_url", "RC_SYNC_CELERY_BROKER_URL"),
        repr=False,
    )
    celery_backend_url: SecretStr | None = Field(
        None, validation_alias=_env("celery_backend_url", "RC_SYNC_CELERY_BACKEND_URL"), repr=False
    )

    @field_validator("executor", mode="before")
    @classmethod
    def _executor_name(cls, value: Any) -> Any:
        return str(value).strip().lower().replace("-", "_") if value is not None else value

    @property
    def freshness_limit(self) -> timedelta:
        """How far the live watermark may lag behind now."""
        return timedelta(minutes=self.freshness_limit_minutes)


# Where pydantic's wording is not what a user needs, a plain sentence (keyed by error type).
_PLAIN = {
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_parsing": "must be a number",
    "bool_parsing": "must be on or off (1/0, true/false, yes/no, on/off)",
    "date_from_datetime_parsing": "must be a date like 2024-05-01",
    "date_parsing": "must be a date like 2024-05-01",
    "string_too_short": "must not be empty",
    "missing": "is required",
}
_BOUNDS = {
    "greater_than_equal": ("ge", "at least"),
    "greater_than": ("gt", "more than"),
    "less_than_equal": ("le", "at most"),
    "less_than": ("lt", "less than"),
}


def _plain_message(err: Any) -> str:
    """One pydantic error as the plain words a user needs (no 'Value error, ', no input echo)."""
    kind = str(err.get("type", ""))
    ctx = err.get("ctx") or {}
    if kind == "value_error":
        return str(ctx.get("error", err.get("msg", ""))).strip()
    if kind in _BOUNDS:
        key, words = _BOUNDS[kind]
        return f"must be {words} {ctx.get(key)}"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected', '')}".rstrip()
    return _PLAIN.get(kind, str(err.get("msg", "is not valid")))


def env_names(cls: type[BaseSettings]) -> dict[str, str]:
    """Field name -> the environment variable that sets it (the field name when there is none)."""
    return {
        name: next((str(a) for a in getattr(field.validation_alias, "choices", [])[1:]), name)
        for name, field in cls.model_fields.items()
    }


def _problems(exc: ValidationError, names: dict[str, str] | None = None) -> str:
    """A validation error as `VARIABLE must ...; ...`, in the user's words rather than pydantic's."""
    names = names or {}
    parts = []
    for err in exc.errors():
        field = str(err["loc"][0]) if err["loc"] else ""
        name = names.get(field, field.upper() or "settings")
        message = _plain_message(err)
        # Messages of our own validators already name the variable.
        parts.append(message if name in message else f"{name} {message}")
    return "; ".join(parts)


_WAREHOUSE_FIELDS = ("warehouse_url", "warehouse_schema")
PartT = TypeVar("PartT", bound=BaseSettings)


def load_settings(**overrides: object) -> Settings:
    """Build Settings from the environment plus explicit overrides, as a ConfigError on bad values."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    warehouse = {k: clean.pop(k) for k in _WAREHOUSE_FIELDS if k in clean}
    try:
        settings = Settings(**clean)  # type: ignore[arg-type]
        settings._warehouse = WarehouseSettings(**warehouse)  # type: ignore[arg-type]
    except ValidationError as exc:
        names = {**env_names(Settings), **env_names(WarehouseSettings)}
        raise ConfigError(f"invalid configuration: {_problems(exc, names)}") from None
    return settings


def load_part(cls: type[PartT]) -> PartT:
    """One composed part of the settings on its own, as a ConfigError naming the variable."""
    try:
        return cls()
    except ValidationError as exc:
        raise ConfigError(f"invalid configuration: {_problems(exc, env_names(cls))}") from None


@dataclass(frozen=True)
class SettingSource:
    """One effective setting for `rc-sync config`: its variable, shown value and origin."""

    variable: str
    value: str
    source: str  # default | .env | environment | option


_SECRET_FIELDS = frozenset({"readycloud_api_token"})


def _shown(name: str, value: Any) -> str:
    """A setting's value as `rc-sync config` shows it: the token only as set/unset, URLs
    without their password."""
    if name in _SECRET_FIELDS:
        return "set" if value is not None and str(value).strip() else "unset"
    if value is None:
        return "(unset)"
    if isinstance(value, SecretStr):
        return "set"
    if name == "warehouse_url":
        from sqlalchemy.engine import make_url

        return make_url(str(value)).render_as_string(hide_password=True)
    return str(value)


def describe_settings(
    settings: Settings, log: LogSettings, overrides: dict[str, object]
) -> list[SettingSource]:
    """Every setting rc-sync runs with and where it came from: option, environment, .env, default."""
    from dotenv import dotenv_values

    dotenv_file = Path(".env")
    from_file = (
        {k.upper() for k, v in dotenv_values(dotenv_file).items() if v is not None and v.strip()}
        if dotenv_file.is_file()
        else set()
    )
    given = {k for k, v in overrides.items() if v is not None}
    rows: list[SettingSource] = []
    parts: list[tuple[BaseSettings, type[BaseSettings]]] = [
        (settings, Settings),
        (settings.warehouse, WarehouseSettings),
        (log, LogSettings),
    ]
    for part, cls in parts:
        names = env_names(cls)
        for name in cls.model_fields:
            variable = names[name]
            if name in given:
                source = "option"
            elif env_is_set(variable):
                source = "environment"
            elif variable.upper() in from_file:
                source = ".env"
            else:
                source = "default"
            rows.append(SettingSource(variable, _shown(name, getattr(part, name)), source))
    return rows
