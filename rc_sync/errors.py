"""rc-sync's own errors, and the one error policy every caller applies (CLI and Dagster).

`is_fatal(exc)`: retrying the run cannot help (configuration, credentials, an unmigrated
warehouse, a refused guard) — Dagster fails the step without its retry policy.
`exit_code(exc)`: the command line's exit status for an error (CONTRACT.md: 2 = fix your
configuration or credentials, 1 = the run failed).
"""

from __future__ import annotations

from rc_extract import errors as api_errors

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


class RcSyncError(Exception):
    """Base class of rc-sync's own errors."""


class ConfigError(RcSyncError):
    """Configuration is missing or wrong; the message says what to set (exit status 2)."""


class RunFailed(RcSyncError):
    """A run failed after it started; what was committed before the failure is kept (exit 1)."""


def _needs_a_fix() -> tuple[type[BaseException], ...]:
    """Errors that only a change of configuration or credentials fixes."""
    from warehouse.migrate import WarehouseNotMigrated

    return (
        ConfigError,
        WarehouseNotMigrated,
        api_errors.AuthenticationError,
        api_errors.PermissionDeniedError,
        api_errors.InsecureTransportError,
    )


def is_fatal(exc: BaseException) -> bool:
    """True when retrying cannot help: bad configuration or credentials, or a refused guard."""
    return isinstance(exc, (*_needs_a_fix(), RunFailed))


def warehouse_unreachable(exc: BaseException) -> str | None:
    """A one-sentence message when the warehouse itself cannot be reached, else None."""
    import sqlalchemy as sa

    if isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError | sa.exc.ArgumentError):
        first = str(getattr(exc, "orig", exc) or exc).strip().splitlines()
        return (
            "cannot open the warehouse (check WAREHOUSE_URL and that the database is running): "
            + (first[0] if first else type(exc).__name__)
        )
    if isinstance(exc, sa.exc.NoSuchModuleError):
        return f"unsupported WAREHOUSE_URL: {exc}"
    return None


def exit_code(exc: BaseException) -> int:
    """The command line's exit status for an error that ended a command."""
    if is_fatal(exc) and not isinstance(exc, RunFailed):
        return EXIT_CONFIG
    # An API host or a warehouse that cannot be reached is reported as configuration to
    # check (READYCLOUD_BASE_URL, WAREHOUSE_URL).
    if isinstance(exc, api_errors.APIConnectionError) or warehouse_unreachable(exc):
        return EXIT_CONFIG
    return EXIT_FAILED
