"""Configuration from environment variables and a `.env` file (names from CONTRACT.md)."""

from __future__ import annotations

import re

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from rc_sync.errors import ConfigError

DEFAULT_BASE_URL = "https://www.readycloud.com"
DEFAULT_WAREHOUSE_URL = "sqlite:///readycloud.db"
DEFAULT_SCHEMA = "readycloud"

_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def _env(name: str, *env: str) -> AliasChoices:
    """Accept a field by its Python name and by its environment variable name(s)."""
    return AliasChoices(name, *env)


class Settings(BaseSettings):
    """Everything rc-sync can be told; each field is an environment variable (see README)."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    readycloud_base_url: str = Field(
        DEFAULT_BASE_URL, validation_alias=_env("readycloud_base_url", "READYCLOUD_BASE_URL")
    )
    readycloud_api_token: SecretStr | None = Field(
        None, validation_alias=_env("readycloud_api_token", "READYCLOUD_API_TOKEN"), repr=False
    )
    readycloud_orgs: str | None = Field(
        None, validation_alias=_env("readycloud_orgs", "READYCLOUD_ORGS")
    )
    warehouse_url: str = Field(
        DEFAULT_WAREHOUSE_URL, validation_alias=_env("warehouse_url", "WAREHOUSE_URL")
    )
    warehouse_schema: str = Field(
        DEFAULT_SCHEMA, validation_alias=_env("warehouse_schema", "WAREHOUSE_SCHEMA")
    )
    page_size: int = Field(
        100, ge=1, le=1000, validation_alias=_env("page_size", "RC_SYNC_PAGE_SIZE")
    )
    concurrency: int = Field(
        4, ge=1, le=32, validation_alias=_env("concurrency", "RC_SYNC_CONCURRENCY")
    )
    max_rps: float | None = Field(None, gt=0, validation_alias=_env("max_rps", "RC_SYNC_MAX_RPS"))
    overlap_s: float = Field(
        600.0, ge=0, validation_alias=_env("overlap_s", "RC_SYNC_OVERLAP_SECONDS")
    )
    timeout_s: float = Field(30.0, gt=0, validation_alias=_env("timeout_s", "RC_SYNC_TIMEOUT"))
    deadline_s: float = Field(300.0, gt=0, validation_alias=_env("deadline_s", "RC_SYNC_DEADLINE"))
    lock_timeout_s: float = Field(
        60.0, ge=0, validation_alias=_env("lock_timeout_s", "RC_SYNC_LOCK_TIMEOUT")
    )
    batch_orders: int = Field(
        1000, ge=1, le=100_000, validation_alias=_env("batch_orders", "RC_SYNC_BATCH_ORDERS")
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

    @field_validator("warehouse_schema")
    @classmethod
    def _check_schema(cls, value: str) -> str:
        if not _SCHEMA_NAME.match(value):
            raise ValueError(
                "WAREHOUSE_SCHEMA must be a plain identifier (letters, digits, underscore)"
            )
        return value

    @property
    def orgs(self) -> list[str] | None:
        """The org pks from READYCLOUD_ORGS, or None for every org the token can see."""
        if not self.readycloud_orgs:
            return None
        orgs = [o.strip() for o in self.readycloud_orgs.split(",") if o.strip()]
        return orgs or None

    @property
    def is_sqlite(self) -> bool:
        """True when the warehouse is an embedded SQLite database."""
        return self.warehouse_url.startswith("sqlite")

    def require_token(self) -> str:
        """The API token, or a ConfigError that says how to provide one."""
        token = self.readycloud_api_token.get_secret_value() if self.readycloud_api_token else ""
        if not token.strip():
            raise ConfigError(
                "READYCLOUD_API_TOKEN is not set: create an API token in ReadyCloud "
                "(an App with the order-read_only scope, see README 'Getting a token') and "
                "export it or put READYCLOUD_API_TOKEN=... in a .env file. "
                "To try rc-sync without an account, run `rc-sync demo`."
            )
        return token.strip()


def load_settings(**overrides: object) -> Settings:
    """Build Settings from the environment plus explicit overrides, as a ConfigError on bad values."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**clean)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from None
