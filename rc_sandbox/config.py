"""Knobs of the sandbox: data size and shape, API behaviour switches and fault injection."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, date, datetime

from rc_common.defaults import DEFAULT_SANDBOX_ORDERS

# Every fault the sandbox can inject; `timeout` sleeps `timeout_s` and then answers normally.
FAULT_KINDS: tuple[str, ...] = (
    "429",
    "500",
    "502",
    "503",
    "504",
    "truncated",
    "garbage",
    "timeout",
)

# Knobs read once, when the data is generated; changing them on a running server does nothing.
DATA_KNOBS: frozenset[str] = frozenset(
    {"orgs", "orders", "seed", "poison_rate", "tie_fraction", "tie_values", "data_until"}
)
DEFAULT_ORDERS = DEFAULT_SANDBOX_ORDERS


@dataclass
class SandboxConfig:
    """Everything that shapes a sandbox; behaviour knobs may be changed while it runs."""

    # data (read at generation time)
    orgs: int = 2
    orders: int = DEFAULT_ORDERS  # total across orgs
    seed: int = 1
    # The generated data end here (the two years before it); None = now at generation, so
    # recent-days queries and today's partition have rows. Same seed + same end = same data.
    data_until: datetime | date | None = None
    poison_rate: float = 0.0  # fraction of orders with one unparseable typed value
    tie_fraction: float = 0.3  # fraction of orders sharing a few identical nested_updated_at
    tie_values: int = 5  # how many distinct shared nested_updated_at values
    # serving
    token: str = "sandbox-token"  # noqa: S105 - the documented sandbox default
    host: str = "127.0.0.1"
    port: int = 0  # 0 = any free port
    latency_ms: float = 0.0
    page_cap: int = 100  # limit is clamped to this, silently
    default_limit: int = 20
    absolute_next: bool = True  # False = host-relative next/previous links
    filters: bool = True  # False = datetime filters silently ignored
    ordering: bool = True  # False = `ordering` ignored (default order)
    fault_rate: float = 0.0
    fault_kinds: tuple[str, ...] = ("429", "500", "502", "503", "504")
    retry_after_s: float | None = 0  # Retry-After value sent with 429 (None: no header)
    timeout_s: float = 2.0  # how long a `timeout` fault sleeps before answering
    drip_bytes: int = 0  # >0: send every body in chunks of this many bytes ...
    drip_interval_s: float = 0.0  # ... with this pause before each chunk after the first
    control: bool = False  # enables /_sandbox/ control endpoints
    # Per-token throttle like ReadyCloud's (API.md §9): "30/min", "20/4s"... None = unlimited.
    rate_limit: str | None = None
    rate_limit_retry_after: bool = True  # send Retry-After with the throttle's 429s
    mutate_every: int = 0  # >0: one random mutation every N list requests
    fail_auth_after: int | None = None  # after N API requests, every request answers 401
    # webhooks (API.md §10): deliveries to registered remote_urls on every change
    read_only_token: bool = False  # True: creating/deleting webhooks answers 403 (no write scope)
    webhook_drop_rate: float = 0.0  # share of deliveries never sent
    webhook_duplicate_rate: float = 0.0  # share of deliveries sent twice
    webhook_reorder_rate: float = 0.0  # share held back so that later ones overtake them
    webhook_reorder_s: float = 0.3  # how long a reordered delivery is held back
    webhook_delay_ms: float = 0.0  # added before every delivery
    webhook_max_attempts: int = 8  # a failed delivery (no 2xx) is retried up to this many times
    webhook_backoff_s: float = 0.2  # first retry wait; doubles per attempt (capped at 30 s)
    webhook_suspend_after: int = 20  # consecutive failed attempts before the webhook is suspended
    webhook_timeout_s: float = 10.0  # per delivery attempt
    webhook_workers: int = 4  # deliveries in flight at once

    def __post_init__(self) -> None:
        """Validate the knobs that would otherwise fail obscurely later."""
        unknown = set(self.fault_kinds) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; choose from {FAULT_KINDS}")
        if self.orgs < 1:
            raise ValueError("orgs must be at least 1")
        if self.orders < 0:
            raise ValueError("orders must not be negative")
        if self.drip_bytes < 0 or self.drip_interval_s < 0:
            raise ValueError("drip_bytes and drip_interval_s must not be negative")
        if self.page_cap < 1 or self.default_limit < 1:
            raise ValueError("page_cap and default_limit must be positive")
        self.fault_kinds = tuple(self.fault_kinds)
        self.resolved_data_until()  # a naive datetime fails here, not at generation
        if self.rate_limit is not None:
            from rc_extract.budget import parse_rate

            parse_rate(self.rate_limit)  # raises a clear error on a bad rate

    def resolved_data_until(self) -> datetime:
        """The end of the generated data: data_until (a date means its midnight UTC) or now."""
        until = self.data_until
        if until is None:
            return datetime.now(UTC).replace(microsecond=0)
        if not isinstance(until, datetime):
            return datetime(until.year, until.month, until.day, tzinfo=UTC)
        if until.tzinfo is None:
            raise ValueError("data_until must be timezone-aware")
        return until.astimezone(UTC)

    def update(self, **changes: object) -> None:
        """Change behaviour knobs in place (validated); data knobs are rejected."""
        names = {f.name for f in fields(self)}
        for name, value in changes.items():
            if name not in names:
                raise ValueError(f"unknown sandbox knob {name!r}")
            if name in DATA_KNOBS:
                raise ValueError(f"{name!r} only takes effect at generation time")
            if name == "fault_kinds":
                kinds = tuple(str(k) for k in value)  # type: ignore[attr-defined]
                unknown = set(kinds) - set(FAULT_KINDS)
                if unknown:
                    raise ValueError(f"unknown fault kinds {sorted(unknown)}")
                value = kinds
            setattr(self, name, value)
