"""The sync engine: reads changed orders through rc_extract and loads them through warehouse.

The command line and the Dagster assets both call this class; nothing else talks to both the
API and the warehouse. See docs/design.md for the window/checkpoint/watermark model.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from types import TracebackType
from typing import Any

import sqlalchemy as sa

from rc_common.paths import parse_object_url, validate_org_pk
from rc_common.tables import DATA_TABLES, PARENTS, TableCounts, sum_counts
from rc_common.timefmt import (
    api_datetime_or_none,
    day_bounds,
    format_api_datetime,
    parse_api_datetime,
    utc_now,
)
from rc_extract import errors as api_errors
from rc_extract.budget import PollingBudget, Priority, priority, purpose
from rc_extract.changes import PROBES, Capabilities, ChangeReader, Window
from rc_extract.client import ReadyCloudClient
from rc_extract.settings import CHANGE_FIELD, MAX_PAGE_SIZE
from rc_sync.budget import budget_for, budget_key
from rc_sync.errors import ConfigError, RunFailed
from rc_sync.plan import OrgPlan, Plan
from rc_sync.progress import NullProgress, ProgressSink
from rc_sync.report import OrgReport, RunReport
from rc_sync.settings import Settings
from warehouse import budget as wh_budget
from warehouse import drift as wh_drift
from warehouse import migrate as wh_migrate
from warehouse import quality
from warehouse import rebuild as wh_rebuild
from warehouse import state as wh_state
from warehouse import webhooks as wh_webhooks
from warehouse.db import describe_db_error, is_read_only, retry_on_disconnect
from warehouse.history import BACKFILL, RECONCILE, SYNC
from warehouse.load import BackfillDay, Loader, LoadStats
from warehouse.locks import org_run_lock
from warehouse.normalize_pool import NormalizePool, Pending, default_workers
from warehouse.parsing import clean_text

log = logging.getLogger(__name__)

# Refuse to mark more than this share of an org's orders deleted in one reconcile unless the
# listing is the whole truth; a listing that suddenly comes back empty is far more likely an
# access problem than a mass deletion.
MASS_DELETE_GUARD = 0.5
# How long the API capability probes stored in sync_state are trusted.
CAPS_MAX_AGE = timedelta(hours=24)
# Budget waits shorter than this are not worth a log line; longer ones are logged at most
# once per BUDGET_LOG_EVERY_S seconds.
BUDGET_LOG_MIN_S = 3.0
BUDGET_LOG_EVERY_S = 15.0


class SyncEngine:
    """Reads orders from ReadyCloud and loads them into the warehouse, one org at a time."""

    def __init__(
        self,
        settings: Settings,
        *,
        client: ReadyCloudClient | None = None,
        db: sa.Engine | None = None,
        progress: ProgressSink | None = None,
        auto_migrate: bool | None = None,
        describe_days: bool = False,
    ) -> None:
        self.settings = settings
        # Fill RunReport.day_rows/touched_days/load_issues after each run (Dagster reports
        # them per partition); the CLI does without the extra queries.
        self.describe_days = describe_days
        self.progress: ProgressSink = progress or NullProgress()
        self._client = client
        self._owns_client = client is None
        self._db = db
        self._owns_db = db is None
        # The embedded SQLite default migrates itself so the first run just works;
        # a shared warehouse must be migrated on purpose (`rc-sync migrate`).
        self.auto_migrate = settings.is_sqlite if auto_migrate is None else auto_migrate
        self._reader: ChangeReader | None = None
        # Probe results of the API server: one value for every org of this engine, seeded
        # from and stored to sync_state (see _seed_capabilities).
        self.capabilities = Capabilities()
        self._warehouse_checked = False
        self._run_id: int | None = None
        self._budget_logged = 0.0
        self._pool: NormalizePool | None = None

    # -- resources -------------------------------------------------------------------------

    @property
    def client(self) -> ReadyCloudClient:
        """The API client (built from settings on first use; needs the token)."""
        if self._client is None:
            s = self.settings
            token = s.require_token()
            budget = budget_for(
                s.rate, lambda: self.db, budget_key(s.readycloud_base_url, s.readycloud_app)
            )
            budget.listeners.append(self._budget_wait)
            self._client = ReadyCloudClient(
                s.readycloud_base_url,
                token,
                timeout=s.timeout_s,
                page_size=s.page_size or MAX_PAGE_SIZE,
                budget=budget,
                concurrency=s.concurrency,
                deadline=s.deadline_s,
                skew_warning_s=s.clock_skew_warning_s,
            )
        return self._client

    def _budget_wait(self, seconds: float, reason: str) -> None:
        """Say why the run waits (progress line; a log line now and then for long waits)."""
        self.progress.waiting(seconds, reason)
        now = time.monotonic()
        if seconds >= BUDGET_LOG_MIN_S and now - self._budget_logged >= BUDGET_LOG_EVERY_S:
            self._budget_logged = now
            log.info("waiting for API budget: %.0f s (%s)", seconds, reason)

    @property
    def reader(self) -> ChangeReader:
        """The change reader (sharing this engine's capability probes)."""
        if self._reader is None:
            self._reader = ChangeReader(self.client, capabilities=self.capabilities)
        return self._reader

    @property
    def db(self) -> sa.Engine:
        """The warehouse engine, migrated (embedded SQLite) or checked to be current."""
        if self._db is None:
            self._db = self.settings.warehouse.make_engine(
                lock_timeout_s=self.settings.lock_timeout_s
            )
        if not self._warehouse_checked:
            # A read-only SQLite file cannot be migrated: reads (status) still work when current.
            if self.auto_migrate and not is_read_only(self._db):
                wh_migrate.upgrade(self._db)
            else:
                wh_migrate.check_current(self._db)
            self._warehouse_checked = True
        return self._db

    def normalize_pool(self) -> NormalizePool:
        """The run's normalization workers (RC_SYNC_NORMALIZE_WORKERS), started on first use."""
        if self._pool is None:
            workers = self.settings.normalize_workers
            self._pool = NormalizePool(default_workers() if workers is None else workers)
        return self._pool

    def _close_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def close(self) -> None:
        """Close the client and dispose of the warehouse engine if this engine built them."""
        self._close_pool()
        if self._client is not None and self._owns_client:
            self._client.close()
        if self._db is not None and self._owns_db:
            self._db.dispose()

    def __enter__(self) -> SyncEngine:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- orgs ------------------------------------------------------------------------------

    def resolve_orgs(self, orgs: Sequence[str] | None = None) -> list[str]:
        """The orgs to sync: the given ones, READYCLOUD_ORGS, or every org the token can see.

        Always asks the API once, which also proves the token works before anything is written;
        org pks that cannot name an org in a URL are refused before that request.
        """
        for pk in [*(orgs or []), *(self.settings.orgs or [])]:
            try:
                validate_org_pk(pk)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        visible: list[str] = []
        for org in self.client.list_orgs():
            try:
                visible.append(parse_object_url(str(org.get("url", ""))).org_pk)
            except ValueError:
                log.warning("ignoring an org without a usable url: %r", org.get("url"))
        wanted = list(orgs) if orgs else self.settings.orgs
        if wanted:
            unknown = [o for o in wanted if o not in visible]
            if unknown and visible:
                log.warning(
                    "org(s) %s are not listed for this token (visible: %s); trying anyway",
                    ", ".join(unknown),
                    ", ".join(visible),
                )
            return list(dict.fromkeys(wanted))
        if not visible:
            raise ConfigError(
                "the API token sees no organizations; check the token's user is a member "
                "of the org, or set READYCLOUD_ORGS"
            )
        return visible

    # -- runs ------------------------------------------------------------------------------

    def sync_incremental(
        self, orgs: Sequence[str] | None = None, *, reset_watermark: bool = False
    ) -> RunReport:
        """Read every order changed since each org's watermark (minus the overlap); first run = full.

        `reset_watermark` forgets each org's watermark first (under the org's run lock), so
        the run reads everything again: the operator's way out of a watermark they distrust.
        """
        return self._run(
            "incremental", orgs, self._sync_live_org, full=False, reset=reset_watermark
        )

    def sync_full_refresh(self, orgs: Sequence[str] | None = None) -> RunReport:
        """Re-read every order; the watermark ends where an incremental run would."""
        return self._run("full_refresh", orgs, self._sync_live_org, full=True, reset=False)

    def sync_window(
        self, since: datetime, until: datetime | None = None, orgs: Sequence[str] | None = None
    ) -> RunReport:
        """Re-read one window of nested_updated_at (a backfill); never moves the live watermark.

        Without `until` the window ends at the server's current time.
        """
        if since.tzinfo is None or (until is not None and until.tzinfo is None):
            raise ConfigError("backfill bounds must carry a timezone (UTC is assumed by the CLI)")
        if until is not None and since >= until:
            raise ConfigError(
                f"--since ({since.isoformat()}) must be before --until ({until.isoformat()})"
            )
        return self._run("window", orgs, self._sync_window_org, since=since, until=until)

    def backfill_days(
        self, days: Iterable[date], key: str, orgs: Sequence[str] | None = None
    ) -> RunReport:
        """Re-read whole UTC days, committing and recording each; a rerun with the same key resumes."""
        ordered = sorted(set(days))
        if not ordered:
            raise ConfigError("no days to backfill")
        return self._run("backfill", orgs, self._backfill_org, days=ordered, key=key)

    def reconcile(self, orgs: Sequence[str] | None = None, *, force: bool = False) -> RunReport:
        """Mark orders that vanished at the source as deleted; clear the mark if they came back."""
        return self._run("reconcile", orgs, self._reconcile_org, force=force)

    def rebuild(
        self,
        orgs: Sequence[str] | None = None,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        all_rows: bool = False,
    ) -> RunReport:
        """Re-derive the typed tables from the stored documents; makes no API request.

        Re-derives the orders normalized by another version than the installed one (all
        orders of the scope with `all_rows`), in committed batches; a rerun resumes.
        """
        started = time.monotonic()
        report = RunReport(kind="rebuild")
        db = self.db
        org_pks = list(orgs or self.settings.orgs or wh_state.warehouse_orgs(db))
        report.run_id = wh_state.begin_run(db, kind="rebuild", org_pks=org_pks)
        self._run_id = report.run_id
        try:
            for org_pk in org_pks:
                rep = OrgReport(
                    org_pk=org_pk, mode="rebuild", window_since=since, window_until=until
                )
                report.orgs.append(rep)
                org_started = time.monotonic()
                with org_run_lock(db, org_pk, timeout_s=self.settings.lock_timeout_s):
                    self._notice_abandoned(org_pk)
                    self._rebuild_org(rep, since, until, all_rows)
                rep.elapsed_s = time.monotonic() - org_started
            report.status = "success"
        except BaseException as exc:
            report.status = "failed"
            report.error = _one_line(exc)
            raise
        finally:
            report.elapsed_s = time.monotonic() - started
            self._close_pool()
            try:
                wh_state.finish_run(db, report.run_id, report)
            except Exception:  # recording the run must never hide the run's own error
                log.exception("could not record the end of run %s", report.run_id)
        return report

    def schema_drift(
        self, orgs: Sequence[str] | None = None, latest: int | None = None
    ) -> list[wh_drift.DriftField]:
        """Fields in the stored documents that no column maps (warehouse.drift); no API request."""
        return wh_drift.schema_drift(self.db, orgs, latest=latest)

    def stale_orders(self) -> dict[str, int]:
        """org_pk -> orders typed by another normalization version than the installed one."""
        return wh_rebuild.stale_counts(self.db)

    def _rebuild_org(
        self, rep: OrgReport, since: datetime | None, until: datetime | None, all_rows: bool
    ) -> None:
        """Rebuild one org under its run lock, with a progress bar over its stale orders."""
        if all_rows:
            wh_rebuild.mark_all_stale(self.db, rep.org_pk, since, until)
        total = wh_rebuild.count_stale(self.db, rep.org_pk, since, until)
        self.progress.start_org(rep.org_pk, "rebuild", total)

        def advance(n: int) -> None:
            rep.batches += 1
            self.progress.advance(n)

        stats = wh_rebuild.rebuild_org(
            self.db,
            rep.org_pk,
            since=since,
            until=until,
            batch_size=self.settings.batch_orders,
            history=self.settings.history,
            on_batch=advance,
            # Worth worker processes only when there is more than one batch to re-derive.
            pool=self.normalize_pool() if total > self.settings.batch_orders else None,
        )
        rep.orders_read = stats.orders_seen
        rep.load_issues_new = stats.issues_opened
        rep.load_issues_closed = stats.issues_closed
        rep.history_rows = stats.history_retyped
        for table, n in stats.changed.items():
            rep.tables[table].add(TableCounts(updated=n, deleted=stats.removed.get(table, 0)))
        rep.orders_updated = stats.changed["orders"]
        self.progress.finish_org(
            f"{stats.orders_seen} orders re-derived: "
            + ", ".join(f"{t} {n} changed" for t, n in stats.changed.items())
            + f"; {stats.history_retyped} history rows re-typed; load issues "
            f"{stats.issues_opened} opened, {stats.issues_closed} closed"
        )

    def count_window(self, org_pk: str, since: datetime | None, until: datetime | None) -> int:
        """The API's count of orders of an org whose nested_updated_at is in [since, until)."""
        with purpose("check"), priority("bulk"):
            return self.reader.count_window(org_pk, Window(since, until or self.server_now()))

    def status(self, orgs: Sequence[str] | None = None) -> list[wh_state.OrgStatus]:
        """Per org known to the warehouse (only `orgs` when given): watermark, last run, row
        counts and open load issues."""
        rows = wh_state.status(self.db)
        return rows if orgs is None else [r for r in rows if r.org_pk in set(orgs)]

    # -- data quality (warehouse.quality, for the Dagster checks) ---------------------------

    def duplicate_keys(self, table: str) -> tuple[int, list[tuple[Any, ...]]]:
        """How many key values of a data table occur more than once, and a few of them."""
        with self.db.connect() as conn:
            count = quality.duplicate_key_count(conn, table)
            return count, quality.duplicate_keys(conn, table) if count else []

    def orphans(self, child: str) -> tuple[int, list[tuple[Any, ...]]]:
        """Rows of a child table whose parent row is missing: how many, and a few keys."""
        with self.db.connect() as conn:
            return quality.orphans(conn, child, PARENTS[child])

    def watermarks(self) -> dict[str, datetime | None]:
        """The live watermark of every org the warehouse knows."""
        with self.db.connect() as conn:
            return quality.watermarks(conn)

    def webhooks_applied(self) -> dict[str, datetime]:
        """When the latest webhook event was applied, per org with an active webhook."""
        return wh_webhooks.last_applied(self.db)

    def compare_counts(self, first: date, last: date) -> dict[str, dict[str, int]]:
        """Per org: live orders of the UTC days first..last in the warehouse and at the API."""
        since, until = day_bounds(first, last)
        orgs = self.resolve_orgs()
        with self.db.connect() as conn:
            stored = {o: quality.rows_in_window(conn, "orders", since, until, [o]) for o in orgs}
        return {
            org: {"warehouse": stored[org], "api": self.count_window(org, since, until)}
            for org in orgs
        }

    def view_rows(self, view: str) -> int:
        """Rows an analyst view returns now; a ConfigError when it cannot be queried."""
        try:
            with self.db.connect() as conn:
                return quality.view_row_count(conn, view)
        except sa.exc.DBAPIError as exc:
            raise ConfigError(
                f"view {view} is not queryable ({type(exc.orig or exc).__name__}); "
                "apply the migrations with `rc-sync migrate`"
            ) from None

    def budget_status(self) -> dict[str, Any]:
        """The App's request budget: requests granted in the last hour and day, by purpose."""
        s = self.settings
        rate = s.rate
        key = budget_key(s.readycloud_base_url, s.readycloud_app)
        used = wh_budget.usage(self.db, key, {"hour": 3600.0, "day": 86400.0})
        state = wh_budget.state(self.db, key)
        paused = 0.0
        if state is not None and state.paused_until is not None:
            paused = max(0.0, state.paused_until - state.now)
        return {
            "rate": str(rate) if rate else "off",
            "app": s.readycloud_app,
            "hour": used["hour"],
            "day": used["day"],
            "hour_budget": round(rate.per_second * 3600) if rate else None,
            "day_budget": round(rate.per_second * 86400) if rate else None,
            "throttled_total": state.throttled_total if state else 0,
            "paused_for_s": round(paused, 1),
        }

    def plan(self, orgs: Sequence[str] | None = None) -> Plan:
        """Requests and time of the usual runs for each org, from one request per org.

        The request is the first page of the org's compact listing at the largest page size:
        its `count` is the org's order count and its length shows how many entries a page
        holds. The expanded page size comes from the last sync's observation when stored.
        """
        wanted = list(orgs) if orgs else self.settings.orgs
        org_pks = wanted if wanted else self.resolve_orgs()
        plan = Plan(self.settings.rate)
        with purpose("probe"), priority("bulk"):
            for org_pk in org_pks:
                first = next(iter(self.client.iter_compact(org_pk, None, concurrency=1)))
                compact = len(first.results) if first.next is not None else self.client.page_size
                stored = wh_state.get_capabilities(self.db, org_pk) or {}
                page = _as_page(stored.get("page_size")) or compact
                plan.orgs.append(
                    OrgPlan(
                        org_pk,
                        first.count,
                        min(page, self.client.page_size),
                        compact,
                        changes_per_refresh=_recent_changes(self.db, org_pk),
                    )
                )
        return plan

    # -- the shared run frame --------------------------------------------------------------

    def _run(
        self,
        kind: str,
        orgs: Sequence[str] | None,
        per_org: Callable[..., None],
        **kwargs: Any,
    ) -> RunReport:
        """Resolve orgs (proving the token), open the warehouse, run `per_org` for each org."""
        started = time.monotonic()
        started_at = utc_now()
        report = RunReport(kind=kind)
        org_pks = self.resolve_orgs(orgs)  # before any write: a bad token writes nothing
        db = self.db
        before = self.client.stats.snapshot()
        # Orgs new to this warehouse: if the API refuses one (a mistyped --orgs), its
        # sync_state row is removed again, so nothing stays behind for an org that never was.
        new_orgs = set(org_pks) - wh_state.orgs_with_state(db, org_pks)
        refused: str | None = None
        report.run_id = wh_state.begin_run(db, kind=kind, org_pks=org_pks)
        self._run_id = report.run_id
        try:
            for org_pk in org_pks:
                org_report = OrgReport(org_pk=org_pk, mode=kind)
                report.orgs.append(org_report)
                org_started = time.monotonic()
                org_before = self.client.stats.snapshot()
                try:
                    with priority(self._priority(kind, org_pk)):
                        per_org(org_report, **kwargs)
                except (api_errors.PermissionDeniedError, api_errors.NotFoundError):
                    if org_pk in new_orgs:
                        refused = org_pk
                    raise
                finally:
                    org_report.elapsed_s = time.monotonic() - org_started
                    _add_request_stats(org_report, org_before, self.client.stats.snapshot())
            if self.describe_days:
                self._describe_days(report, started_at, kwargs.get("days"))
            report.status = "success"
        except BaseException as exc:
            report.status = "failed"
            report.error = _one_line(exc)
            raise
        finally:
            after = self.client.stats.snapshot()
            report.requests = int(after.get("requests", 0)) - int(before.get("requests", 0))
            report.retries = int(after.get("retries", 0)) - int(before.get("retries", 0))
            report.throttled = int(after.get("throttled", 0)) - int(before.get("throttled", 0))
            report.requests_by_purpose = _by_purpose(before, after)
            report.budget = str(self.settings.rate) if self.settings.rate else "off"
            budget = self.client.budget
            report.budget_wait_s = budget.waited_s if isinstance(budget, PollingBudget) else 0.0
            report.elapsed_s = time.monotonic() - started
            self._close_pool()  # no worker process outlives the run
            try:
                retry_on_disconnect(lambda: wh_state.finish_run(db, report.run_id, report))
                if refused is not None and wh_state.forget_org(db, refused):
                    log.info("org %s was refused by the API: nothing kept for it", refused)
            except Exception as exc:  # recording the run must never hide the run's own error
                log.error("could not record the end of run %s: %s", report.run_id, _one_line(exc))
                log.debug("recording the end of the run failed", exc_info=True)
        return report

    def _describe_days(
        self, report: RunReport, started_at: datetime, days: list[date] | None
    ) -> None:
        """Per-day row counts of the run's window, its days, and the load issues it opened."""
        since: datetime | None
        until: datetime | None
        keys: list[str] = []
        if days:  # a backfill: exactly its days, each with what it wrote
            since, until = day_bounds(days[0], days[-1])
            keys = [d.isoformat() for d in days]
            report.day_writes = {
                key: {
                    t: sum_counts(o.days.get(key, {}).get(t) for o in report.orgs)
                    for t in DATA_TABLES
                }
                for key in keys
            }
        else:  # a live run: every day its window covered
            sinces = [o.window_since for o in report.orgs]
            since = None if None in sinces or not sinces else min(s for s in sinces if s)
            untils = [o.window_until for o in report.orgs if o.window_until is not None]
            until = max(untils) if untils else None
        with self.db.connect() as conn:
            rows = quality.rows_per_day(conn, since, until)
            report.load_issues = quality.load_issues_since(conn, started_at)
        report.touched_days = keys or sorted(rows)
        zeros = dict.fromkeys(DATA_TABLES, 0)
        report.day_rows = {key: rows.get(key, zeros) for key in report.touched_days}

    def _priority(self, kind: str, org_pk: str) -> Priority:
        """Refresh priority for an incremental run of an org that has a watermark, else bulk.

        Refreshes keep the warehouse fresh and are small; first loads, full refreshes,
        backfills and reconciles are long and can wait (docs/design.md, the request budget).
        """
        if kind == "incremental" and wh_state.get_watermark(self.db, org_pk) is not None:
            return "refresh"
        return "bulk"

    # -- per org ---------------------------------------------------------------------------

    def _sync_live_org(self, rep: OrgReport, *, full: bool, reset: bool) -> None:
        """Incremental or full sync of one org under the org's run lock; moves the watermark."""
        s = self.settings
        with org_run_lock(self.db, rep.org_pk, timeout_s=s.lock_timeout_s):
            self._notice_abandoned(rep.org_pk)
            if reset:
                log.warning("org %s: watermark reset; reading every order again", rep.org_pk)
                wh_state.reset_watermark(self.db, rep.org_pk)
            watermark = wh_state.get_watermark(self.db, rep.org_pk)
            rep.watermark_before = watermark
            # The window ends at the server's now (its Date header), never this machine's:
            # nested_updated_at is stamped by the server's clock.
            until = self.server_now()
            if watermark is not None and watermark > until:
                watermark = self._rewind_watermark(rep.org_pk, watermark, until)
            since = None
            if watermark is not None and not full:
                since = watermark - timedelta(seconds=s.overlap_s)
                rep.mode = "incremental"
            else:
                rep.mode = "full_refresh" if full else "full (first run)"
            seen: set[str] | None = set() if full else None
            # Deletion marks older than this run that the complete listing contradicts are
            # cleared; marks set while the run reads (a concurrent reconcile) are left alone.
            deleted_before = wh_state.deleted_orders(self.db, rep.org_pk) if full else {}
            live_before = set(wh_state.known_orders(self.db, rep.org_pk)) if full else set()
            self._load_window(rep, Window(since, until), live=True, seen=seen)
            if seen is not None and since is None:
                self._apply_listing(rep, seen, live_before, deleted_before, force=False)
            rep.watermark_after = wh_state.get_watermark(self.db, rep.org_pk)

    def _notice_abandoned(self, org_pk: str) -> None:
        """Mark runs of the org that died holding its lock (SIGKILL, power loss) as abandoned."""
        for run_id in wh_state.mark_abandoned(self.db, org_pk, self._run_id):
            log.warning(
                "run %s of org %s was left running by a dead process: abandoned", run_id, org_pk
            )

    def _rewind_watermark(
        self, org_pk: str, watermark: datetime, until: datetime
    ) -> datetime | None:
        """A watermark ahead of the server's time (set under a wrong client clock) moved back.

        The orders stored carry the server's timestamps: the latest of them is a position every
        change after which may still be unread, so the run restarts there (minus the overlap).
        """
        latest = wh_state.latest_change(self.db, org_pk)
        target = min(latest, until) if latest is not None else None
        log.warning(
            "org %s: the watermark %s is ahead of the API server's time %s (set while a clock "
            "was wrong?); re-reading from the latest change stored (%s)",
            org_pk,
            format_api_datetime(watermark),
            format_api_datetime(until),
            format_api_datetime(target) if target else "the beginning",
        )
        wh_state.rewind_watermark(self.db, org_pk, target)
        return target

    def _sync_window_org(self, rep: OrgReport, *, since: datetime, until: datetime | None) -> None:
        """Backfill one window of one org; the live watermark is left alone."""
        if until is None:
            until = self.server_now()
            if since >= until:
                raise ConfigError(
                    f"--since ({since.isoformat()}) must be before the server's current time "
                    f"({until.isoformat()})"
                )
        rep.watermark_before = wh_state.get_watermark(self.db, rep.org_pk)
        self._load_window(rep, Window(since, until), live=False)
        rep.watermark_after = wh_state.get_watermark(self.db, rep.org_pk)

    def _backfill_org(self, rep: OrgReport, *, days: list[date], key: str) -> None:
        """Backfill whole days of one org, skipping days already done under `key`.

        Each run of consecutive days still to do is read as ONE window: a 30-day backfill
        costs the requests of its orders' pages, not a page walk per day. The batches are
        split by day, so each day's writes are counted on their own, and a day is recorded
        done in the transaction of the batch after which all its orders are loaded.
        """
        rep.watermark_before = wh_state.get_watermark(self.db, rep.org_pk)
        done = wh_state.days_done(self.db, rep.org_pk, key)
        todo = [day for day in days if day not in done]
        rep.days_skipped += len(days) - len(todo)
        for run in _consecutive_runs(todo):
            for day in run:
                rep.days[day.isoformat()] = {t: TableCounts() for t in rep.tables}
            since, until = day_bounds(run[0], run[-1])
            label = f"day {run[0]}" if len(run) == 1 else f"days {run[0]}..{run[-1]}"
            self._load_window(
                rep, Window(since, until), live=False, label=label, backfill=_DayRun(key, run)
            )
        rep.window_since, rep.window_until = day_bounds(days[0], days[-1])
        rep.watermark_after = wh_state.get_watermark(self.db, rep.org_pk)

    def _load_window(
        self,
        rep: OrgReport,
        window: Window,
        *,
        live: bool,
        label: str | None = None,
        backfill: _DayRun | None = None,
        seen: set[str] | None = None,
    ) -> None:
        """Stream one window from the API into the warehouse in bounded, committed batches.

        `backfill`, when given, is the run of whole days the window covers (batches are
        split and recorded per day); `seen` collects the pk of every order the window listed.
        """
        if rep.window_since is None:
            rep.window_since = window.since
        rep.window_until = window.until
        description = label or (
            f"{rep.mode} since {window.since.isoformat()}" if window.since else rep.mode
        )
        self.progress.start_org(rep.org_pk, description, None)
        stored_caps = self._seed_capabilities(rep.org_pk)
        loader = Loader(self.db, history=self.settings.history)
        observed_by = SYNC if live else BACKFILL
        pending: list[dict[str, Any]] = []
        checkpoint: datetime | None = None
        total_known = False
        # A streaming pipeline: pages are fetched ahead on the client's threads, batches are
        # normalized here, and each batch is loaded on one writer thread while the next one
        # is normalized. At most one load is in flight and loads run in batch order, so each
        # batch still commits with its own checkpoint, in order; memory stays bounded.
        with _BatchWriter(self, loader, rep, observed_by, live=live) as writer:
            for batch in self.reader.iter_window(rep.org_pk, window):
                total = getattr(batch, "total", None)
                if total is not None and not total_known:
                    self.progress.set_total(total)
                    self._announce(rep, total, description)
                    total_known = True
                pending.extend(batch.orders)
                # Progress moves per page read, not per loaded batch of RC_SYNC_BATCH_ORDERS.
                self.progress.advance(len(batch.orders))
                if seen is not None:
                    seen.update(_order_pks(rep.org_pk, batch.orders))
                if batch.checkpoint is not None and (
                    checkpoint is None or batch.checkpoint > checkpoint
                ):
                    checkpoint = batch.checkpoint
                # A backfill also flushes as soon as a day is complete, so that it is
                # recorded done (and a crash resumes after it) as in a day-by-day walk.
                day_complete = backfill is not None and backfill.completes(checkpoint)
                if len(pending) >= self.settings.batch_orders or day_complete:
                    if backfill is not None:
                        writer.submit_days(pending, backfill, complete_until=checkpoint)
                    else:
                        writer.submit(pending, checkpoint if live else None)
                    pending = []
            # The last flush always runs, even when empty, so the watermark reaches `until`
            # (live runs) or the backfill's remaining days are recorded with their last rows.
            if backfill is not None:
                writer.submit_days(pending, backfill, complete_until=window.until)
            else:
                writer.submit(pending, checkpoint if live else None)
        rep.path = self.reader.last_path
        self._store_capabilities(rep.org_pk, stored_caps)
        self.progress.finish_org(_org_summary(rep))

    def _announce(self, rep: OrgReport, total: int, description: str) -> None:
        """Before a long read: the requests and the time it takes at the configured rate."""
        rate = self.settings.rate
        page = self.client.honoured_page_size.get("list") or self.client.page_size
        requests = math.ceil(total / max(1, page))
        rep.estimated_requests = requests
        if rate is None:
            return
        self.progress.set_pace(page * rate.per_second)
        if requests > rate.limit:
            from rc_sync.progress import format_duration

            log.info(
                "org %s %s: %d orders to read in about %d requests of %d orders: about %s at %s",
                rep.org_pk,
                description,
                total,
                requests,
                page,
                format_duration(rate.seconds_for(requests)),
                rate,
            )

    def _seed_capabilities(self, org_pk: str) -> dict[str, Any] | None:
        """Reuse the capability probes a recent run stored for the org (saves ~4 requests).

        Returns the stored entry when it was fresh enough to use, else None.

        Probes are a property of the server and the reader re-checks them as it goes (pages
        outside the window switch to the compact path; checkpoints need ascending pages), so
        a stale value costs time, never correctness; stored values expire after a day anyway.
        """
        stored = wh_state.get_capabilities(self.db, org_pk)
        if not isinstance(stored, dict):
            return None
        try:
            fresh = utc_now() - parse_api_datetime(str(stored.get("probed_at"))) < CAPS_MAX_AGE
        except ValueError:
            fresh = False
        if not fresh:
            return None
        self.capabilities.assume(stored)
        return stored

    def _store_capabilities(self, org_pk: str, stored: dict[str, Any] | None) -> None:
        """Remember this run's probe results for the next run (only when they changed)."""
        probed = self.capabilities.known()
        found: dict[str, Any] = {name: probed.get(name) for name in PROBES}
        if found.get("filters") and self.reader.last_path == "compact-diff":
            found["filters"] = None  # the walk proved the filters ignored: probe again next time
        # Page sizes the server really returned (for `rc-sync plan` and estimates).
        found["page_size"] = self.client.honoured_page_size.get("list") or (stored or {}).get(
            "page_size"
        )
        found["compact_page_size"] = self.client.honoured_page_size.get("compact") or (
            stored or {}
        ).get("compact_page_size")
        known: dict[str, Any] = {k: v for k, v in found.items() if v is not None}
        previous = {name: (stored or {}).get(name) for name in found}
        if known == {k: v for k, v in previous.items() if v is not None} and stored:
            return
        if known:
            known["probed_at"] = format_api_datetime(utc_now())
        wh_state.set_capabilities(self.db, org_pk, known)

    def _account(self, rep: OrgReport, n_docs: int, stats: LoadStats) -> None:
        """Add one loaded batch to the org's report (progress moved as its pages were read)."""
        rep.batches += 1
        rep.orders_read += n_docs
        rep.orders_new += stats.orders_new
        rep.orders_updated += stats.orders_updated
        rep.orders_unchanged += stats.orders_unchanged
        rep.orders_skipped_older += stats.orders_skipped_older
        rep.load_issues_new += stats.issues_new
        for table, counts in stats.tables.items():
            if table in rep.tables:
                rep.tables[table].add(counts)

    def _apply_listing(
        self,
        rep: OrgReport,
        present: set[str],
        live_known: set[str],
        deleted: dict[str, datetime],
        *,
        force: bool,
    ) -> None:
        """Mark orders missing from a complete listing deleted; clear marks it contradicts.

        Shared by reconcile and `sync --full-refresh`, with the same mass-deletion guard.
        """
        gone = sorted(live_known - present)
        back = sorted(pk for pk in deleted if pk in present)
        too_many = len(gone) > 10 and len(gone) > MASS_DELETE_GUARD * len(live_known)
        if too_many and not force:
            raise RunFailed(
                f"{rep.mode} of org {rep.org_pk} would mark {len(gone)} of {len(live_known)} "
                "orders deleted; refusing, as this looks like an access problem rather than "
                "deletions. Check the token's access to the org, or run "
                "`rc-sync reconcile --force`."
            )
        # Marks are compared with versions' nested_updated_at (the server's clock).
        now = self.server_now()
        history = self.settings.history
        rep.orders_deleted = wh_state.mark_deleted(self.db, rep.org_pk, gone, now, history=history)
        rep.orders_restored = wh_state.clear_deleted(
            self.db,
            rep.org_pk,
            back,
            history=history,
            observed_by=RECONCILE if rep.mode == "reconcile" else SYNC,
        )

    def _reconcile_org(self, rep: OrgReport, *, force: bool) -> None:
        """Compare a verified compact listing with the warehouse; mark deletions and returns.

        Holds the org's run lock, so reconcile and live syncs of one org take turns. The
        warehouse's orders are read before the listing: an order a backfill stores while the
        listing runs is not in that snapshot, so it cannot be taken for a deleted one.
        """
        with org_run_lock(self.db, rep.org_pk, timeout_s=self.settings.lock_timeout_s):
            self.progress.start_org(rep.org_pk, "reconcile", None)
            live_known = set(wh_state.known_orders(self.db, rep.org_pk))
            listing = self.reader.list_all(rep.org_pk)
            present: set[str] = set()
            for url in listing:
                order_pk = parse_object_url(url).order_pk
                if order_pk is not None:
                    present.add(order_pk)
            deleted = wh_state.deleted_orders(self.db, rep.org_pk)
            self._apply_listing(rep, present, live_known, deleted, force=force)
            rep.path = "compact-listing"
            rep.orders_read = len(present)
            self.progress.advance(len(present))
            self.progress.finish_org(
                f"{len(present)} orders at the source, {rep.orders_deleted} marked deleted, "
                f"{rep.orders_restored} restored"
            )

    def server_now(self) -> datetime:
        """The API server's current time, as far as its responses tell (see ServerClock)."""
        return self.client.server_clock.now()


class _BatchWriter:
    """Normalizes batches (in worker processes where available) and loads them in order.

    `submit` hands a batch to normalization: in a worker process (warehouse.normalize_pool)
    once a full batch shows the load is big, else on the calling thread. Up to the pool's
    depth of batches normalize ahead; the oldest is then handed to the one writer thread after
    the previous load finished and was accounted for. So normalization of batch k+1 runs in
    another process while batch k is written, loads run one at a time in batch order, and
    each batch still commits with its own checkpoint. Leaving the block loads what is left
    and waits for the last load; a failed load raises from the next `submit` or from the end
    of the block. When the block is left by an error, the load already in flight is still
    waited for (it is a whole batch with its own checkpoint), batches not yet loaded are
    dropped (their checkpoints were never committed) and the error is re-raised.
    """

    def __init__(
        self, engine: SyncEngine, loader: Loader, rep: OrgReport, observed_by: str, *, live: bool
    ) -> None:
        self.engine = engine
        self.loader = loader
        self.rep = rep
        self.observed_by = observed_by
        self.threads = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rc-sync-load")
        self.inflight: tuple[Future[LoadStats], int, str | None, int] | None = None
        self.live = live
        self.normalizing: deque[_Normalizing] = deque()
        self.pool: NormalizePool | None = None

    def submit(
        self,
        docs: list[dict[str, Any]],
        checkpoint: datetime | None,
        *,
        day: str | None = None,
        days_done: Sequence[BackfillDay] = (),
    ) -> None:
        """Normalize `docs` here and hand them to the writer thread (after the previous load).

        `day` (a backfill day, ISO) is where the batch's writes are counted; `days_done` are
        recorded done in the batch's transaction.
        """
        if self.pool is None and len(docs) >= self.engine.settings.batch_orders:
            self.pool = self.engine.normalize_pool()  # a big load: worth a worker process
        pool = self.pool or _IN_PROCESS
        pending = pool.submit(self.rep.org_pk, docs, utc_now())
        self.normalizing.append(_Normalizing(pending, len(docs), checkpoint, day, days_done))
        while len(self.normalizing) > pool.depth:
            self._load(self.normalizing.popleft())

    def _load(self, item: _Normalizing) -> None:
        """Hand a normalized batch to the writer thread once the previous load is done."""
        batch = item.pending.result()
        self.wait()
        future = self.threads.submit(
            self.loader.load_batch,
            self.rep.org_pk,
            batch,
            checkpoint=item.checkpoint,
            live=item.checkpoint is not None,
            backfill_days=item.days_done,
            observed_by=self.observed_by,
        )
        self.inflight = (future, item.n_docs, item.day, len(item.days_done))

    def submit_days(
        self, docs: list[dict[str, Any]], run: _DayRun, *, complete_until: datetime | None
    ) -> None:
        """Submit a backfill's documents one day at a time; record the days now complete.

        A day is complete once every order up to `complete_until` is loaded (the reader's
        checkpoint: its pages are ascending and consistent up to there; the window's end
        after the last page). Its record rides on the last batch submitted here, so a crash
        leaves it to be read again, never marked done without its rows.
        """
        by_day = run.split(docs)
        complete = run.take_complete(complete_until)
        if not by_day:
            by_day = {run.days[0]: []}
        last = max(by_day)
        for day in sorted(by_day):
            done = [BackfillDay(run.key, d) for d in complete] if day == last else []
            self.submit(by_day[day], None, day=day.isoformat(), days_done=done)

    def wait(self) -> None:
        """Wait for the load in flight and account for it (re-raising its error)."""
        if self.inflight is None:
            return
        future, n_docs, day, n_done = self.inflight
        self.inflight = None
        stats = future.result()
        if day is not None:
            before = {t: replace(c) for t, c in self.rep.tables.items()}
        self.engine._account(self.rep, n_docs, stats)
        if day is not None:
            counts = self.rep.days.setdefault(day, {t: TableCounts() for t in self.rep.tables})
            for table, after in self.rep.tables.items():
                counts[table].add(after.minus(before[table]))
        self.rep.days_done += n_done
        if self.live:
            # Events never move the watermark; polls say whether webhooks had kept up.
            try:
                hits, misses = wh_webhooks.record_poll(
                    self.engine.db, self.rep.org_pk, stats.written, stats.current
                )
            except Exception as exc:  # a statistic: never fail a sync that loaded its rows
                log.warning("could not record webhook hits/misses (%s)", type(exc).__name__)
            else:
                self.rep.webhook_hits += hits
                self.rep.webhook_misses += misses

    def __enter__(self) -> _BatchWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc is None:
                while self.normalizing:
                    self._load(self.normalizing.popleft())
                self.wait()
            else:
                self.normalizing.clear()
                try:
                    self.wait()
                except Exception:
                    log.exception("a batch load failed while the run was already failing")
        finally:
            self.threads.shutdown(wait=True)


@dataclass
class _Normalizing:
    """A submitted batch waiting for its normalization, with what its load needs."""

    pending: Pending
    n_docs: int
    checkpoint: datetime | None
    day: str | None
    days_done: Sequence[BackfillDay]


# Batches too small to be worth a worker process are normalized on the calling thread.
_IN_PROCESS = NormalizePool(0)


def _consecutive_runs(days: Sequence[date]) -> list[list[date]]:
    """Sorted days grouped into runs of consecutive days ([1, 2, 4] -> [[1, 2], [4]])."""
    runs: list[list[date]] = []
    for day in sorted(days):
        if runs and day - runs[-1][-1] == timedelta(days=1):
            runs[-1].append(day)
        else:
            runs.append([day])
    return runs


class _DayRun:
    """Consecutive days of a keyed backfill read as one window: per-day split and completion."""

    def __init__(self, key: str, days: list[date]) -> None:
        self.key = key
        self.days = days
        self.recorded: set[date] = set()

    def day_of(self, doc: Any) -> date:
        """The backfill day an order belongs to: its nested_updated_at's UTC day, clamped.

        The window selected it by that stamp; an order without one (or one that moved on
        while the window was read) counts for the nearest day of the run.
        """
        stamp = api_datetime_or_none(doc.get(CHANGE_FIELD)) if isinstance(doc, dict) else None
        if stamp is None:
            return self.days[0]
        day = stamp.astimezone(UTC).date()
        return min(max(day, self.days[0]), self.days[-1])

    def split(self, docs: list[dict[str, Any]]) -> dict[date, list[dict[str, Any]]]:
        """The documents grouped by backfill day."""
        out: dict[date, list[dict[str, Any]]] = {}
        for doc in docs:
            out.setdefault(self.day_of(doc), []).append(doc)
        return out

    def completes(self, until: datetime | None) -> bool:
        """Whether some day not yet recorded lies wholly before `until`."""
        return until is not None and any(
            day not in self.recorded and day_bounds(day)[1] <= until for day in self.days
        )

    def take_complete(self, until: datetime | None) -> list[date]:
        """Days not yet recorded whose whole UTC day lies before `until` (then recorded)."""
        if until is None:
            return []
        complete = [
            day for day in self.days if day not in self.recorded and day_bounds(day)[1] <= until
        ]
        self.recorded.update(complete)
        return complete


def _order_pks(org_pk: str, docs: Iterable[Any]) -> Iterator[str]:
    """The order pks of listed documents, as the normalizer derives them (bad urls skipped)."""
    for doc in docs:
        url = doc.get("url") if isinstance(doc, dict) else None
        if not isinstance(url, str):
            continue
        try:
            ref = parse_object_url(url)
        except ValueError:
            continue
        if ref.org_pk == org_pk and ref.order_pk is not None and ref.box_pk is None:
            yield clean_text(ref.order_pk)


def _as_page(value: Any) -> int | None:
    """A stored page size, or None when absent or not a positive integer."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _recent_changes(db: sa.Engine, org_pk: str) -> int:
    """Orders of the org changed in the last 15 minutes on average over the last day (an
    estimate of what each refresh reads, from the warehouse's own rows)."""
    from warehouse import models

    orders = models.orders_table
    since = utc_now() - timedelta(days=1)
    with db.connect() as conn:
        changed = conn.execute(
            sa.select(sa.func.count())
            .select_from(orders)
            .where(orders.c.org_pk == org_pk, orders.c.nested_updated_at >= since)
        ).scalar_one()
    return math.ceil(int(changed) / 96)


def _by_purpose(before: dict[str, Any], after: dict[str, Any]) -> dict[str, int]:
    """Requests per purpose between two client stats snapshots (purposes with none left out)."""
    old, new = before.get("by_kind", {}), after.get("by_kind", {})
    diff = {k: int(new.get(k, 0)) - int(old.get(k, 0)) for k in new}
    return {k: v for k, v in sorted(diff.items()) if v}


def _add_request_stats(rep: OrgReport, before: dict[str, Any], after: dict[str, Any]) -> None:
    """Attribute the client's request counters since `before` to one org."""
    for name, count in _by_purpose(before, after).items():
        rep.requests_by_purpose[name] = rep.requests_by_purpose.get(name, 0) + count
    rep.requests += int(after.get("requests", 0)) - int(before.get("requests", 0))
    rep.retries += int(after.get("retries", 0)) - int(before.get("retries", 0))
    rep.throttled += int(after.get("throttled", 0)) - int(before.get("throttled", 0))


def _org_summary(rep: OrgReport) -> str:
    """One line per org for the progress output."""
    return (
        f"{rep.orders_read} orders read ({rep.orders_new} new, {rep.orders_updated} updated, "
        f"{rep.orders_unchanged} unchanged), {rep.load_issues_new} new load issues"
    )


def _one_line(exc: BaseException) -> str:
    """An exception as one line of text (never with a traceback, SQL or parameters)."""
    described = describe_db_error(exc)
    if described is not None:
        return described[:500]
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:500]
