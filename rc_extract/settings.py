"""Constants of the ReadyCloud client: defaults, list parameter values, header names.

API paths live in `rc_common.paths` (shared with the sandbox and the warehouse).
"""

from __future__ import annotations

from datetime import UTC, datetime
from importlib import metadata

# Client defaults (the constructor's keyword arguments).
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_PAGE_SIZE = 100
# The largest page asked for when the page size is automatic; servers clamp larger limits
# silently (DRF's max_limit), so asking costs nothing and the first page shows what is honoured.
MAX_PAGE_SIZE = 1000
DEFAULT_CONCURRENCY = 4
DEFAULT_DEADLINE_S = 300.0
DEFAULT_MAX_BACKOFF_S = 30.0
BACKOFF_BASE_S = 0.5  # first retry waits about this long; doubles per attempt up to max_backoff
RATE_LIMIT_FLOOR_S = 1.0  # a 429 waits at least this long, doubling per attempt (API.md §9)

# Orders list parameters (API.md §5).
EXPAND_ALL = "boxes,items"
ONLY_COMPACT = "url,nested_updated_at"
ORDERING_FIELD = "nested_updated_at"
CHANGE_FIELD = "nested_updated_at"
FILTER_SINCE = f"{CHANGE_FIELD}__gte"
FILTER_UNTIL = f"{CHANGE_FIELD}__lt"

# Capability probe: no order can have changed this late, so an honoured filter gives count 0.
PROBE_FAR_FUTURE = datetime(2999, 1, 1, tzinfo=UTC)

# A verified listing walk is repeated at most this often before giving up.
MAX_WALK_ATTEMPTS = 5

# HTTP statuses worth retrying besides 429.
RETRYABLE_STATUS = frozenset({500, 502, 503, 504})

# The query parameter that would carry a token; never sent, stripped from echoed links.
TOKEN_QUERY_PARAM = "bearer_token"  # noqa: S105 - a parameter name, not a secret

# Response headers that may carry a request id, in order of preference.
REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-correlation-id", "x-amzn-requestid")

# How much of a server's error text is kept in exception messages.
DETAIL_MAX_CHARS = 500


def _version() -> str:
    try:
        return metadata.version("rc-sync")
    except metadata.PackageNotFoundError:
        return "0"


USER_AGENT = f"rc-sync/{_version()} (+httpx)"
