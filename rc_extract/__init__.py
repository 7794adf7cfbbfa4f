"""rc_extract: the ReadyCloud v2 client, pagination, retries and change detection.

The names below are imported lazily, so that the pure helpers (`rc_extract.urls`,
`rc_extract.timefmt`), which the warehouse uses, do not pull httpx into processes that never
talk to the API.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rc_extract.changes import ChangeReader, OrderBatch, Window
    from rc_extract.client import Page, ReadyCloudClient
    from rc_extract.errors import (
        APIConnectionError,
        APIStatusError,
        APITimeoutError,
        AuthenticationError,
        InsecureTransportError,
        InvalidResponseError,
        NotFoundError,
        PermissionDeniedError,
        RateLimitError,
        ReadyCloudError,
        ServerError,
        UnstableListingError,
    )
    from rc_extract.stats import RequestStats

_EXPORTS = {
    "ChangeReader": "changes",
    "OrderBatch": "changes",
    "Window": "changes",
    "Page": "client",
    "ReadyCloudClient": "client",
    "RequestStats": "stats",
    **{
        name: "errors"
        for name in (
            "APIConnectionError",
            "APIStatusError",
            "APITimeoutError",
            "AuthenticationError",
            "InsecureTransportError",
            "InvalidResponseError",
            "NotFoundError",
            "PermissionDeniedError",
            "RateLimitError",
            "ReadyCloudError",
            "ServerError",
            "UnstableListingError",
        )
    },
}

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "ChangeReader",
    "InsecureTransportError",
    "InvalidResponseError",
    "NotFoundError",
    "OrderBatch",
    "Page",
    "PermissionDeniedError",
    "RateLimitError",
    "ReadyCloudClient",
    "ReadyCloudError",
    "RequestStats",
    "ServerError",
    "UnstableListingError",
    "Window",
]


def __getattr__(name: str) -> Any:
    """Import an exported name from its module on first use."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rc_extract' has no attribute {name!r}")
    return getattr(importlib.import_module(f"rc_extract.{module}"), name)
