"""How many requests, and how long at the configured rate, the usual runs of some orgs take.

Pure arithmetic over what one request per org tells (the org's order count and how many
orders a page really holds); `rc-sync plan` and the estimates before long runs use it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from rc_extract.budget import Rate

# Requests a first run spends besides the pages: the org listing (shared by all orgs of a run)
# and the capability probes (filters honoured: 1; ordering honoured: 2), then cached a day.
PROBES_PER_FIRST_RUN = 3
REFRESHES_PER_DAY = 96  # the Dagster refresh schedule: every 15 minutes


@dataclass(frozen=True)
class OrgPlan:
    """What one org costs, in requests, for each kind of run."""

    org_pk: str
    orders: int
    page: int  # orders per expanded page (honoured by the server)
    compact_page: int  # entries per compact-listing page
    changes_per_refresh: int = 0  # orders changed between two refreshes (estimate)

    @property
    def first_load(self) -> int:
        """A first load (or a full refresh): every page, plus the probes."""
        return max(1, math.ceil(self.orders / self.page)) + PROBES_PER_FIRST_RUN

    @property
    def full_refresh(self) -> int:
        """A full refresh once the probes are cached."""
        return max(1, math.ceil(self.orders / self.page))

    @property
    def reconcile(self) -> int:
        """A reconcile: the whole compact listing."""
        return max(1, math.ceil(self.orders / self.compact_page))

    @property
    def refresh(self) -> int:
        """One incremental refresh: one page per `page` changed orders, at least one."""
        return max(1, math.ceil(self.changes_per_refresh / self.page))


@dataclass
class Plan:
    """The plan of every configured org at one rate."""

    rate: Rate | None
    orgs: list[OrgPlan] = field(default_factory=list)

    def total(self, kind: str) -> int:
        """Requests of one kind of run for every org together (plus one org listing per run)."""
        if kind == "refresh_day":
            return REFRESHES_PER_DAY * (1 + sum(o.refresh for o in self.orgs))
        return 1 + sum(int(getattr(o, kind)) for o in self.orgs)

    def seconds(self, requests: int) -> float | None:
        """Wall time of `requests` at the rate (None = no limit: not bounded by the budget)."""
        return self.rate.seconds_for(requests) if self.rate else None

    def refresh_share(self) -> float | None:
        """The share of a day's budget that a day of refreshes takes."""
        if self.rate is None:
            return None
        return self.total("refresh_day") / (self.rate.per_second * 86400)

    def orgs_per_refresh(self, interval_s: float = 900.0) -> int | None:
        """How many orgs like these one refresh interval can serve within the budget."""
        if self.rate is None or not self.orgs:
            return None
        per_org = sum(o.refresh for o in self.orgs) / len(self.orgs)
        return int((self.rate.per_second * interval_s - 1) // per_org)
