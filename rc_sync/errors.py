"""Errors of the engine and command line that are not API errors."""

from __future__ import annotations


class RcSyncError(Exception):
    """Base class of rc-sync's own errors."""


class ConfigError(RcSyncError):
    """Configuration is missing or wrong; the message says what to set (exit status 2)."""


class RunFailed(RcSyncError):
    """A run failed after it started; what was committed before the failure is kept (exit 1)."""
