"""Progress output: a rich progress bar per org on a terminal, plain log lines elsewhere."""

from __future__ import annotations

import logging
import sys
import time
from typing import Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from rc_sync.logs import STDERR, json_logs

log = logging.getLogger(__name__)


class ProgressSink(Protocol):
    """Receives progress events from the engine."""

    def start_org(self, org_pk: str, description: str, total: int | None) -> None:
        """A new org (or day of a backfill) starts; total orders if known."""

    def set_total(self, total: int | None) -> None:
        """The number of orders to read became known."""

    def advance(self, orders: int) -> None:
        """Orders were read and loaded."""

    def finish_org(self, summary: str) -> None:
        """The current org is done."""

    def waiting(self, seconds: float, reason: str) -> None:
        """The run waits `seconds` for the API budget (why: `reason`)."""

    def set_pace(self, orders_per_s: float | None) -> None:
        """The most orders per second the request budget allows (None = no limit), for ETAs."""

    def close(self) -> None:
        """Stop drawing."""


class NullProgress:
    """Progress that shows nothing (library and Dagster use)."""

    def start_org(self, org_pk: str, description: str, total: int | None) -> None:
        """Ignore."""

    def set_total(self, total: int | None) -> None:
        """Ignore."""

    def advance(self, orders: int) -> None:
        """Ignore."""

    def finish_org(self, summary: str) -> None:
        """Ignore."""

    def waiting(self, seconds: float, reason: str) -> None:
        """Ignore."""

    def set_pace(self, orders_per_s: float | None) -> None:
        """Ignore."""

    def close(self) -> None:
        """Ignore."""


class LogProgress:
    """Plain log lines, at most one every `every_s` seconds (CI, cron, pipes)."""

    def __init__(self, every_s: float = 5.0) -> None:
        self.every_s = every_s
        self._org = ""
        self._done = 0
        self._total: int | None = None
        self._last = 0.0
        self._started = 0.0
        self._pace: float | None = None

    def start_org(self, org_pk: str, description: str, total: int | None) -> None:
        """Log the start of an org."""
        self._org, self._done, self._total = org_pk, 0, total
        self._started = self._last = time.monotonic()
        log.info("org %s: %s", org_pk, description)

    def set_total(self, total: int | None) -> None:
        """Remember the total."""
        self._total = total

    def advance(self, orders: int) -> None:
        """Log progress now and then."""
        self._done += orders
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            rate = self._done / max(now - self._started, 1e-9)
            of = f"/{self._total}" if self._total is not None else ""
            eta = budget_eta(self._total, self._done, rate, self._pace)
            shown = f", about {format_duration(eta)} left" if eta is not None else ""
            log.info("org %s: %d%s orders (%.0f/s)%s", self._org, self._done, of, rate, shown)

    def finish_org(self, summary: str) -> None:
        """Log the org's summary."""
        log.info("org %s: %s", self._org, summary)

    def waiting(self, seconds: float, reason: str) -> None:
        """Nothing: the engine logs long budget waits itself."""

    def set_pace(self, orders_per_s: float | None) -> None:
        """Remember the budget's pace for the ETA."""
        self._pace = orders_per_s

    def close(self) -> None:
        """Nothing to stop."""


class RichProgress:
    """A progress bar per org on a terminal: orders read, rate and ETA when the count is known."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or STDERR
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[eta]}"),
            console=self.console,
            transient=False,
        )
        self._task: TaskID | None = None
        self._started = 0.0
        self._pace: float | None = None
        self._progress.start()

    def start_org(self, org_pk: str, description: str, total: int | None) -> None:
        """Add a bar for the org."""
        self._started = time.monotonic()
        self._task = self._progress.add_task(
            f"org {org_pk} {description}", total=total, rate="", eta=""
        )

    def set_total(self, total: int | None) -> None:
        """Set the bar's total."""
        if self._task is not None:
            self._progress.update(self._task, total=total)

    def advance(self, orders: int) -> None:
        """Move the bar."""
        if self._task is None:
            return
        self._progress.advance(self._task, orders)
        task = self._progress.tasks[-1]
        done = task.completed
        rate = done / max(time.monotonic() - self._started, 1e-9)
        total = int(task.total) if task.total is not None else None
        eta = budget_eta(total, int(done), rate, self._pace)
        self._progress.update(
            self._task,
            rate=f"{rate:,.0f} orders/s",
            eta=f"ETA {format_duration(eta)}" if eta is not None else "",
        )

    def set_pace(self, orders_per_s: float | None) -> None:
        """Remember the budget's pace for the ETA."""
        self._pace = orders_per_s

    def waiting(self, seconds: float, reason: str) -> None:
        """Show the wait in the bar's rate column."""
        if self._task is not None and seconds >= 1:
            self._progress.update(self._task, rate=f"waiting for API budget: {seconds:.0f} s")

    def finish_org(self, summary: str) -> None:
        """Complete the bar and print the summary line."""
        if self._task is not None:
            task = self._progress.tasks[-1]
            self._progress.update(self._task, total=task.completed)
        self._progress.console.print(f"  {summary}")

    def close(self) -> None:
        """Stop the live display."""
        self._progress.stop()


def budget_eta(total: int | None, done: int, observed: float, pace: float | None) -> float | None:
    """Seconds left: the remaining orders at the slower of the speed so far and the budget's pace.

    The speed so far alone is wrong under a budget: the first window's burst goes at once, and
    the run then settles at the budget's pace (orders per page x requests per second).
    """
    if total is None or done >= total:
        return None
    speeds = [s for s in (observed if done else None, pace) if s]
    if not speeds:
        return None
    return (total - done) / min(speeds)


def format_duration(seconds: float) -> str:
    """1 h 05 min, 12 min, 40 s."""
    if seconds >= 3600:
        hours, rest = divmod(int(seconds), 3600)
        return f"{hours} h {rest // 60:02d} min"
    if seconds >= 90:
        return f"{round(seconds / 60)} min"
    return f"{max(0, round(seconds))} s"


def default_progress() -> ProgressSink:
    """A progress bar on a terminal, log lines otherwise (and with JSON logs)."""
    if sys.stderr.isatty() and not json_logs():
        return RichProgress()
    return LogProgress()
