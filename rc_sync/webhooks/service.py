"""Webhook operations behind `rc-sync webhooks ...`: register, list, remove, serve, apply."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

from rc_common.timefmt import parse_api_datetime
from rc_extract import errors as api_errors
from rc_extract.client import ReadyCloudClient, is_loopback_host
from rc_extract.settings import MAX_PAGE_SIZE
from rc_sync.budget import budget_for, budget_key
from rc_sync.engine import SyncEngine
from rc_sync.errors import ConfigError
from rc_sync.settings import Settings
from rc_sync.webhooks.applier import ApplyReport, WebhookApplier
from rc_sync.webhooks.receiver import build_receiver_app
from warehouse import webhooks as wh

log = logging.getLogger("rc_sync.webhooks")

ENTITY = "orders"
WRITE_SCOPE_HINT = (
    "the API token may not create or delete webhooks: registering needs a token with write "
    "access to webhooks (the `order` scope, not only `order-read_only`); ask the App owner "
    "for one, use it for `rc-sync webhooks register` only, and keep the read-only token for syncs"
)


def delivery_url(remote_base: str, org_pk: str) -> str:
    """The url ReadyCloud calls for an org: `<base>/readycloud/<org_pk>/orders` (CONTRACT.md)."""
    return f"{remote_base.rstrip('/')}/readycloud/{quote(org_pk, safe='')}/orders"


def check_remote_base(remote_base: str) -> str:
    """The receiver's public base url, validated: https://, or http:// only for a loopback host."""
    text = (remote_base or "").strip().rstrip("/")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"--remote-url {text!r} is not a URL: give the receiver's public base URL, "
            "e.g. https://hooks.example.com"
        )
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ConfigError(
            "--remote-url must be https:// (ReadyCloud only calls HTTPS URLs); plain http:// is "
            "allowed only for a loopback host such as the sandbox"
        )
    if parts.query or parts.fragment:
        raise ConfigError("--remote-url must not carry a query string or fragment")
    return text


def _datetime(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_api_datetime(value)
    except ValueError:
        return None


@dataclass(frozen=True)
class Registered:
    """One webhook created by `register`."""

    org_pk: str
    webhook_url: str
    remote_url: str
    replaced: int


def register(
    settings: Settings, remote_base: str, orgs: Sequence[str] | None = None
) -> list[Registered]:
    """Create the `orders` webhook for each org and store the hash of its token.

    A webhook of ours already pointing at the same delivery url (suspended or not) is deleted
    first, so that registering again is how a suspended webhook is re-enabled.
    """
    base = check_remote_base(remote_base)
    done: list[Registered] = []
    with SyncEngine(settings) as engine:
        for org_pk in engine.resolve_orgs(orgs):
            target = delivery_url(base, org_pk)
            try:
                replaced = 0
                for hook in engine.client.list_webhooks(org_pk):
                    if hook.get("remote_url") == target and isinstance(hook.get("url"), str):
                        engine.client.delete_webhook(hook["url"])
                        wh.delete_registration(engine.db, org_pk, hook["url"])
                        replaced += 1
                created = engine.client.create_webhook(org_pk, ENTITY, target)
            except api_errors.PermissionDeniedError:
                raise ConfigError(WRITE_SCOPE_HINT) from None
            token = created.get("token")
            url = created.get("url")
            if not isinstance(token, str) or not token or not isinstance(url, str):
                raise ConfigError(
                    f"ReadyCloud created a webhook for org {org_pk} but returned no token or url; "
                    "remove it in ReadyCloud and try again"
                )
            wh.save_registration(
                engine.db,
                org_pk=org_pk,
                webhook_url=url,
                entity=str(created.get("entity") or ENTITY),
                remote_url=target,
                token=token,
            )
            done.append(Registered(org_pk, url, target, replaced))
    return done


@dataclass(frozen=True)
class Listed:
    """One webhook as ReadyCloud lists it, and whether this warehouse holds its token hash."""

    org_pk: str
    webhook_url: str
    entity: str
    remote_url: str
    created_at: datetime | None
    suspended_at: datetime | None
    known: bool


def list_webhooks(settings: Settings, orgs: Sequence[str] | None = None) -> list[Listed]:
    """Every webhook of the configured orgs (recording suspended_at for ours)."""
    out: list[Listed] = []
    with SyncEngine(settings) as engine:
        ours = {(r.org_pk, r.webhook_url) for r in wh.registrations(engine.db)}
        for org_pk in engine.resolve_orgs(orgs):
            try:
                hooks = engine.client.list_webhooks(org_pk)
            except api_errors.PermissionDeniedError:
                raise ConfigError(
                    "the API token may not read webhooks; use a token with access to webhooks "
                    "(the `order` scope)"
                ) from None
            for hook in hooks:
                url = str(hook.get("url") or "")
                suspended = _datetime(hook.get("suspended_at"))
                known = (org_pk, url) in ours
                if known:
                    wh.note_suspension(engine.db, org_pk, url, suspended)
                out.append(
                    Listed(
                        org_pk=org_pk,
                        webhook_url=url,
                        entity=str(hook.get("entity") or ""),
                        remote_url=str(hook.get("remote_url") or ""),
                        created_at=_datetime(hook.get("created_at")),
                        suspended_at=suspended,
                        known=known,
                    )
                )
    return out


def remove(
    settings: Settings, orgs: Sequence[str] | None = None, remote_base: str | None = None
) -> list[str]:
    """Delete the webhooks rc-sync registered (optionally only those for one receiver base url)."""
    removed: list[str] = []
    with SyncEngine(settings) as engine:
        wanted = set(engine.resolve_orgs(orgs))
        for reg in wh.registrations(engine.db):
            if reg.org_pk not in wanted:
                continue
            if remote_base and reg.remote_url != delivery_url(remote_base, reg.org_pk):
                continue
            try:
                engine.client.delete_webhook(reg.webhook_url)
            except api_errors.PermissionDeniedError:
                raise ConfigError(WRITE_SCOPE_HINT) from None
            wh.delete_registration(engine.db, reg.org_pk, reg.webhook_url)
            removed.append(reg.webhook_url)
    return removed


def _client_factory(
    settings: Settings, engine: SyncEngine
) -> Callable[[], ReadyCloudClient] | None:
    """Builds the API client for detail GETs, or None when no token is configured.

    Its GETs draw from the App's shared request budget (the engine's warehouse ledger).
    """
    if settings.readycloud_api_token is None:
        return None

    def make() -> ReadyCloudClient:
        s = settings
        key = budget_key(s.readycloud_base_url, s.readycloud_app)
        return ReadyCloudClient(
            s.readycloud_base_url,
            s.require_token(),
            timeout=s.timeout_s,
            page_size=s.page_size or MAX_PAGE_SIZE,
            budget=budget_for(s.rate, lambda: engine.db, key),
            concurrency=1,
            deadline=s.deadline_s,
        )

    return make


def make_applier(settings: Settings, engine: SyncEngine) -> WebhookApplier:
    """An applier on the engine's warehouse, with the settings' retention."""
    return WebhookApplier(
        engine.db,
        client_factory=_client_factory(settings, engine),
        retention=timedelta(days=settings.webhook_retention_days),
        history=settings.history,
    )


def apply_once(settings: Settings) -> ApplyReport:
    """Apply every pending event once (`rc-sync webhooks apply`)."""
    with SyncEngine(settings) as engine:
        applier = make_applier(settings, engine)
        try:
            applier._last_prune = float("-inf")
            applier.prune_if_due()
            applier.drain()
        finally:
            applier.close()
        return applier.report


def serve(
    settings: Settings,
    *,
    host: str,
    port: int,
    apply: bool = True,
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
    on_ready: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Run the receiver (and, unless apply=False, the applier) until interrupted."""
    import uvicorn

    stop_event = stop or threading.Event()
    wake = threading.Event()
    with SyncEngine(settings) as engine:
        db = engine.db  # migrated/checked before the first delivery is accepted
        app = build_receiver_app(
            db, max_body_bytes=settings.webhook_max_body_bytes, on_stored=wake.set
        )
        applier = make_applier(settings, engine) if apply else None
        worker: threading.Thread | None = None
        applier_stop = threading.Event()
        if applier is not None:
            worker = threading.Thread(
                target=applier.run, args=(applier_stop, wake), name="rc-sync-applier", daemon=True
            )
            worker.start()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc}; pick another --port"
            ) from None
        scheme = "https" if ssl_certfile else "http"
        bound_host, bound_port = sock.getsockname()[:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        base = f"{scheme}://{shown}:{bound_port}"

        class _Server(uvicorn.Server):
            async def on_tick(self, counter: int) -> bool:
                if stop_event.is_set():
                    return True
                return await super().on_tick(counter)

            async def startup(self, sockets: list[socket.socket] | None = None) -> None:
                await super().startup(sockets)
                if self.started and on_ready is not None:
                    on_ready(base)

        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,  # uvicorn's access log would record client addresses
            lifespan="off",
            timeout_graceful_shutdown=5,
            ssl_certfile=ssl_certfile,
            ssl_keyfile=ssl_keyfile,
        )
        try:
            _Server(config).run(sockets=[sock])
        finally:
            sock.close()
            applier_stop.set()
            if worker is not None:
                worker.join(30)
            if applier is not None:
                applier.close()


def status(
    settings: Settings, window: timedelta = timedelta(days=7)
) -> dict[str, wh.WebhookStatus]:
    """Per org webhook figures over the last `window` (deliveries, pending, hits, misses)."""
    with SyncEngine(settings) as engine:
        return wh.status(engine.db, datetime.now(UTC) - window)


# -- for Dagster ------------------------------------------------------------------------


def applied_events(
    settings: Settings, after_id: int, limit: int = 10_000
) -> list[tuple[int, str, datetime | None, datetime]]:
    """Applied events after a cursor id, never past a still-pending one (the sensor's feed)."""
    with SyncEngine(settings) as engine:
        return wh.applied_after(engine.db, after_id, limit)


@dataclass(frozen=True)
class Health:
    """Webhook health for the Dagster check: suspensions and miss rates."""

    registered: int
    suspended: list[str]
    hits_day: int
    misses_day: int
    hits_week: int
    misses_week: int

    @property
    def miss_rate_day(self) -> float | None:
        """Misses / judged changes over the last 24 hours."""
        total = self.hits_day + self.misses_day
        return None if total == 0 else self.misses_day / total

    @property
    def miss_rate_week(self) -> float | None:
        """Misses / judged changes over the last 7 days."""
        total = self.hits_week + self.misses_week
        return None if total == 0 else self.misses_week / total


REFRESH_SUSPENSIONS_AFTER = timedelta(hours=1)


def health(settings: Settings) -> Health:
    """Suspensions (re-read from ReadyCloud at most hourly, when a token is set) and miss rates."""
    now = datetime.now(UTC)
    with SyncEngine(settings) as engine:
        regs = wh.registrations(engine.db)
        stale = [
            r
            for r in regs
            if r.checked_at is None or now - r.checked_at > REFRESH_SUSPENSIONS_AFTER
        ]
        if stale and settings.readycloud_api_token is not None:
            for org_pk in sorted({r.org_pk for r in stale}):
                try:
                    hooks = engine.client.list_webhooks(org_pk)
                except api_errors.ReadyCloudError as exc:
                    log.warning("could not read the webhooks of org %s: %s", org_pk, exc)
                    continue
                by_url = {str(h.get("url")): h for h in hooks}
                for reg in (r for r in stale if r.org_pk == org_pk):
                    hook = by_url.get(reg.webhook_url)
                    # a webhook deleted at ReadyCloud delivers nothing: report it like a suspension
                    suspended = _datetime(hook.get("suspended_at")) if hook else now
                    wh.note_suspension(engine.db, org_pk, reg.webhook_url, suspended)
            regs = wh.registrations(engine.db)
        day = wh.status(engine.db, now - timedelta(days=1))
        week = wh.status(engine.db, now - timedelta(days=7))
    return Health(
        registered=len(regs),
        suspended=sorted(f"{r.org_pk} ({r.remote_url})" for r in regs if r.suspended_at),
        hits_day=sum(s.hits for s in day.values()),
        misses_day=sum(s.misses for s in day.values()),
        hits_week=sum(s.hits for s in week.values()),
        misses_week=sum(s.misses for s in week.values()),
    )
