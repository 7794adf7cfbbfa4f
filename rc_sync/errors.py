"""rc-sync's own errors, and the one error policy every caller applies (CLI and Dagster).

`is_fatal(exc)`: retrying the run cannot help (configuration, credentials, an unmigrated
warehouse, a refused guard) — Dagster fails the step without its retry policy.
`exit_code(exc)`: the command line's exit status for an error (CONTRACT.md: 2 = fix your
configuration or credentials, 1 = the run failed).
"""

from __future__ import annotations

from rc_extract import errors as api_errors

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT: the shell convention for Ctrl-C


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


def _is_sqlite_error(exc: BaseException) -> bool:
    """True when a database error came from SQLite (a file, not a server)."""
    orig = getattr(exc, "orig", None)
    return type(orig).__module__.startswith("sqlite3") if orig is not None else False


def warehouse_unreachable(exc: BaseException) -> str | None:
    """A one-sentence message when the warehouse itself cannot be reached, else None."""
    import sqlalchemy as sa

    if isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError | sa.exc.ArgumentError):
        first = str(getattr(exc, "orig", exc) or exc).strip().splitlines()
        reason = first[0] if first else type(exc).__name__
        if _is_sqlite_error(exc):
            # A file, not a server: nothing is "running"; its path or permissions are wrong.
            if "readonly" in reason.lower():
                return read_only_message(reason)
            return (
                "cannot open the SQLite warehouse (check WAREHOUSE_URL, and that its folder "
                f"exists and this user may read and write there): {reason}"
            )
        return (
            "cannot open the warehouse (check WAREHOUSE_URL and that the database is running): "
            + reason
        )
    if isinstance(exc, sa.exc.NoSuchModuleError):
        return f"unsupported WAREHOUSE_URL: {exc}"
    return None


def read_only_message(reason: str = "attempt to write a readonly database") -> str:
    """The sentence for a SQLite warehouse this process may read but not write."""
    return (
        f"the SQLite warehouse is read-only for this user ({reason}): make the file and its "
        "folder writable, or point WAREHOUSE_URL at a writable file"
    )


def describe_failure(
    exc: BaseException, *, warehouse_opened: bool | None = None
) -> tuple[int, str]:
    """(exit status, one sentence) for an error that ended a command.

    2 is for configuration and credentials: a bad setting, a token the API refuses, an API
    host or a warehouse that could not be reached at all. Everything that goes wrong once the
    run is under way (the API stops answering, the disk fills, the warehouse connection drops
    or its file stays locked) is a failed run: 1, saying what happened. Database errors are
    described by their first line only, never with the statement or its parameters (order
    JSON); `--debug` shows the whole traceback. `warehouse_opened` defaults to whether this
    process has connected to a warehouse before.
    """
    import sqlalchemy as sa

    from warehouse.db import WarehouseConfigError, describe_db_error
    from warehouse.db import warehouse_opened as opened_before

    if isinstance(exc, api_errors.APIConnectionError):
        return (EXIT_FAILED if exc.answered else EXIT_CONFIG), str(exc)
    if isinstance(exc, RunFailed):
        return EXIT_FAILED, str(exc)
    if is_fatal(exc) or isinstance(exc, WarehouseConfigError):
        return EXIT_CONFIG, str(exc)
    if isinstance(exc, sa.exc.NoSuchModuleError | sa.exc.ArgumentError):
        return EXIT_CONFIG, warehouse_unreachable(exc) or str(exc)
    if _is_sqlite_error(exc) and "readonly database" in str(getattr(exc, "orig", "")).lower():
        return EXIT_CONFIG, read_only_message()
    described = describe_db_error(exc)
    if described is not None:
        opened = opened_before() if warehouse_opened is None else warehouse_opened
        runtime = described.startswith(("disk full", "the SQLite warehouse is locked"))
        if not opened and not runtime:
            return EXIT_CONFIG, warehouse_unreachable(exc) or described
        return EXIT_FAILED, described
    prefix = "" if isinstance(exc, api_errors.ReadyCloudError) else f"{type(exc).__name__}: "
    return EXIT_FAILED, f"{prefix}{exc}"


def exit_code(exc: BaseException) -> int:
    """The command line's exit status for an error that ended a command (see describe_failure)."""
    return describe_failure(exc)[0]
