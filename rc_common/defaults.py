"""Defaults shared by several layers (here so that each can import them cheaply)."""

from __future__ import annotations

# The one default size of the sandbox: `rc-sync sandbox`, `rc-sync demo` and Dagster's
# sandbox mode (RC_SANDBOX_ORDERS) all generate this many orders unless told otherwise.
DEFAULT_SANDBOX_ORDERS = 1000
