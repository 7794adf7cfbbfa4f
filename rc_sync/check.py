"""`rc-sync check`: is the configuration usable, does the API answer, is the warehouse ready?

One verdict per item, like Airbyte's `check` or Meltano's `--test`: the settings, the token,
the API (exactly one request, the first page of the orgs list, drawn from the request budget
as purpose `check`), each org (listed for the token = readable), and the warehouse
(reachable, migrated to this rc-sync's head, writable). Nothing is written anywhere.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import sqlalchemy as sa

from rc_common.paths import parse_object_url
from rc_extract import errors as api_errors
from rc_extract.budget import LocalBudget, purpose
from rc_extract.client import ORGS_PATH, ReadyCloudClient
from rc_sync.budget import budget_for, budget_key
from rc_sync.errors import ConfigError, describe_failure
from rc_sync.settings import Settings
from warehouse import migrate as wh_migrate
from warehouse.db import engine_schema, is_read_only, sqlite_path

log = logging.getLogger(__name__)

OK, FAIL, SKIP = "ok", "FAIL", "skipped"
# A check answers quickly: a host that does not answer fails it after this (not RC_SYNC_DEADLINE).
CHECK_DEADLINE_S = 30.0
CHECK_LOCK_TIMEOUT_S = 5.0


@dataclass
class Verdict:
    """One item of the check: what, its verdict (ok / FAIL / skipped) and what was found."""

    item: str
    verdict: str
    detail: str


@dataclass
class CheckReport:
    """Every verdict, in the order checked."""

    verdicts: list[Verdict] = field(default_factory=list)
    requests: int = 0

    @property
    def ok(self) -> bool:
        """True when nothing failed (skipped items follow from a failure reported before)."""
        return all(v.verdict != FAIL for v in self.verdicts)

    def add(self, item: str, verdict: str, detail: str) -> None:
        """Record one verdict (and log it)."""
        self.verdicts.append(Verdict(item, verdict, detail))
        log.debug("check %s: %s (%s)", item, verdict, detail)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "ok": self.ok,
            "requests": self.requests,
            "verdicts": [asdict(v) for v in self.verdicts],
        }


def run_check(load: Callable[[], Settings]) -> CheckReport:
    """Check configuration, warehouse and API; never raises for what it finds."""
    report = CheckReport()
    try:
        settings = load()
    except ConfigError as exc:
        report.add("configuration", FAIL, str(exc))
        for item in ("warehouse", "API"):
            report.add(item, SKIP, "the configuration must be fixed first")
        return report
    report.add(
        "configuration",
        OK,
        f"settings are valid (READYCLOUD_BASE_URL {settings.readycloud_base_url}, "
        f"READYCLOUD_RATE_LIMIT {settings.rate or 'off'}; `rc-sync config` lists every one)",
    )
    db = _check_warehouse(settings, report)
    try:
        _check_api(settings, db, report)
    finally:
        if db is not None:
            db.dispose()
    return report


# -- warehouse ---------------------------------------------------------------------------


def _check_warehouse(settings: Settings, report: CheckReport) -> sa.Engine | None:
    """Reachable, migrated, writable; returns the engine when the request ledger may use it."""
    shown = sa.engine.make_url(settings.warehouse_url).render_as_string(hide_password=True)
    try:
        db = settings.warehouse.make_engine(lock_timeout_s=CHECK_LOCK_TIMEOUT_S)
        with db.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:
        report.add("warehouse", FAIL, describe_failure(exc, warehouse_opened=False)[1])
        report.add("migrations", SKIP, "the warehouse must be reachable first")
        report.add("writable", SKIP, "the warehouse must be reachable first")
        return None
    schema = engine_schema(db)
    where = f"{shown}" + (f", schema {schema}" if schema else "")
    report.add("warehouse", OK, f"reachable ({where})")
    migrated = _check_migrations(db, settings, report)
    _check_writable(db, migrated, report)
    if not migrated:
        db.dispose()
        return None
    return db


def _check_migrations(db: sa.Engine, settings: Settings, report: CheckReport) -> bool:
    head = wh_migrate.head_revision()
    try:
        current = wh_migrate.current_revision(db)
    except Exception as exc:
        report.add("migrations", FAIL, describe_failure(exc, warehouse_opened=True)[1])
        return False
    if current == head:
        report.add("migrations", OK, f"at this rc-sync's head revision {head}")
        return True
    if current is None and settings.is_sqlite and not is_read_only(db):
        # The embedded default migrates itself on the first sync (README quick start).
        report.add(
            "migrations",
            OK,
            f"not migrated yet; the first `rc-sync sync` migrates this SQLite file to {head} "
            "(or run `rc-sync migrate` now)",
        )
        return False
    if current is None:
        detail = f"the warehouse has no rc-sync tables: run `rc-sync migrate` (head is {head})"
    else:
        detail = (
            f"the warehouse is at revision {current}, this rc-sync needs {head}: run "
            "`rc-sync migrate` (a newer warehouse needs a newer rc-sync)"
        )
    report.add("migrations", FAIL, detail)
    return False


def _check_writable(db: sa.Engine, migrated: bool, report: CheckReport) -> None:
    """Prove this user may write, without writing: a rolled-back no-op write (or permissions)."""
    if db.dialect.name == "sqlite":
        path = sqlite_path(db.url)
        if is_read_only(db):
            report.add(
                "writable",
                FAIL,
                "the SQLite file is read-only for this user: make the file and its folder "
                "writable, or point WAREHOUSE_URL at a writable file",
            )
            return
        folder = os.path.dirname(os.path.abspath(path)) if path else None
        if folder and not os.access(folder, os.W_OK):
            report.add(
                "writable",
                FAIL,
                f"this user may not create files in {folder} (SQLite keeps its journal next "
                "to the database): make the folder writable",
            )
            return
    try:
        with db.connect() as conn, conn.begin() as tx:
            if migrated:
                # Permissions are checked when the statement starts, whether or not a row matches.
                conn.execute(sa.text("UPDATE sync_state SET org_pk = org_pk WHERE 1 = 0"))
            elif db.dialect.name == "postgresql":
                allowed = conn.execute(
                    sa.text(
                        "SELECT CASE WHEN to_regnamespace(:s) IS NULL "
                        "THEN has_database_privilege(current_database(), 'CREATE') "
                        "ELSE has_schema_privilege(:s, 'CREATE') END"
                    ),
                    {"s": engine_schema(db)},
                ).scalar()
                if not allowed:
                    raise PermissionError(
                        f"this user may not create tables in schema {engine_schema(db)}"
                    )
            tx.rollback()
    except Exception as exc:
        detail = str(exc) if isinstance(exc, PermissionError) else describe_failure(exc)[1]
        report.add("writable", FAIL, detail)
        return
    report.add("writable", OK, "this user may write the warehouse (checked, nothing written)")


# -- API ---------------------------------------------------------------------------------


def _check_api(settings: Settings, db: sa.Engine | None, report: CheckReport) -> None:
    """One request, the orgs list: token accepted? which orgs are readable?"""
    try:
        token = settings.require_token()
    except ConfigError as exc:
        report.add("API token", FAIL, str(exc))
        report.add("API", SKIP, "needs a token")
        return
    report.add("API token", OK, "set (never shown)")
    rate = settings.rate
    key = budget_key(settings.readycloud_base_url, settings.readycloud_app)
    # The request counts against the App's budget like any other, through the shared ledger
    # when the warehouse holds it; otherwise this process alone keeps to the rate.
    budget = budget_for(rate, lambda: db, key) if db is not None else LocalBudget(rate)
    client = ReadyCloudClient(
        settings.readycloud_base_url,
        token,
        timeout=min(settings.timeout_s, CHECK_DEADLINE_S),
        budget=budget,
        concurrency=1,
        deadline=min(settings.deadline_s, CHECK_DEADLINE_S),
    )
    try:
        with purpose("check"):
            page = next(iter(client.iter_pages(ORGS_PATH, kind="check", concurrency=1)))
    except Exception as exc:
        report.requests = int(client.stats.snapshot().get("requests", 0))
        _api_failed(exc, settings, report)
        return
    finally:
        client.close()
    report.requests = int(client.stats.snapshot().get("requests", 0))
    visible: list[str] = []
    for org in page.results:
        try:
            visible.append(parse_object_url(str(org.get("url", ""))).org_pk)
        except (ValueError, AttributeError):
            continue
    more = " (the first page of several)" if page.next else ""
    report.add(
        "API",
        OK,
        f"{settings.readycloud_base_url} answered and accepted the token; "
        f"{len(visible)} org(s) listed{more}",
    )
    _org_verdicts(settings, visible, bool(page.next), report)


def _api_failed(exc: BaseException, settings: Settings, report: CheckReport) -> None:
    if isinstance(exc, api_errors.AuthenticationError):
        detail = str(exc)
    elif isinstance(exc, api_errors.APIConnectionError):
        detail = f"cannot reach READYCLOUD_BASE_URL ({settings.readycloud_base_url}): {exc}"
    else:
        detail = describe_failure(exc)[1]
    report.add("API", FAIL, detail)
    report.add("orgs", SKIP, "the API must answer first")


def _org_verdicts(
    settings: Settings, visible: list[str], partial: bool, report: CheckReport
) -> None:
    wanted = settings.orgs
    if not wanted:
        if not visible:
            report.add(
                "orgs",
                FAIL,
                "the token sees no organizations: check that the token's user is a member of "
                "the org, or set READYCLOUD_ORGS",
            )
        for org in visible:
            report.add(f"org {org}", OK, "readable (listed for this token)")
        return
    for org in wanted:
        if org in visible:
            report.add(f"org {org}", OK, "readable (listed for this token)")
        elif partial:
            report.add(f"org {org}", OK, "not on the first page of the orgs list (not checked)")
        else:
            listed = ", ".join(visible) or "none"
            report.add(
                f"org {org}",
                FAIL,
                f"not listed for this token (it lists: {listed}): check READYCLOUD_ORGS / "
                "--orgs and that the token's user is a member of that org",
            )
