"""rc_extract: the ReadyCloud v2 client, pagination, retries and change detection."""

from __future__ import annotations

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
