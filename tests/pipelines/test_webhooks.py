"""Dagster and webhooks: the sensor observes applied events per table and day; the health check warns."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa
from pipelines_support import resources_for, sandbox_config

from rc_sandbox import SandboxServer


@pytest.fixture
def hooked(target: Any) -> Iterator[SandboxServer]:
    """A sandbox whose changes reach a running receiver over a synced warehouse."""
    from rc_sync.engine import SyncEngine
    from rc_sync.settings import load_settings
    from rc_sync.webhooks import service

    with SandboxServer(sandbox_config(orders=120, control=True)) as server:
        settings = load_settings(
            readycloud_base_url=server.base_url,
            readycloud_api_token=server.token,
            warehouse_url=target.url,
            warehouse_schema=target.schema,
        )
        with SyncEngine(settings, auto_migrate=True) as engine:
            engine.sync_incremental()
        stop, ready, bases = threading.Event(), threading.Event(), []
        thread = threading.Thread(
            target=service.serve,
            args=(settings,),
            kwargs={
                "host": "127.0.0.1",
                "port": 0,
                "stop": stop,
                "on_ready": lambda b: (bases.append(b), ready.set()),
            },
            daemon=True,
        )
        thread.start()
        assert ready.wait(30)
        service.register(settings, bases[0])
        try:
            yield server
        finally:
            stop.set()
            thread.join(30)


def _applied(target: Any, n: int) -> None:
    import time

    from support import warehouse_engine

    engine = warehouse_engine(target)
    try:
        end = time.monotonic() + 30
        while True:
            with engine.connect() as conn:
                done = conn.execute(
                    sa.text("SELECT count(*) FROM webhook_events WHERE applied_at IS NOT NULL")
                ).scalar_one()
            if done >= n:
                return
            assert time.monotonic() < end
            time.sleep(0.05)
    finally:
        engine.dispose()


def test_sensor_observes_each_table_and_day_once_per_batch(
    hooked: SandboxServer, target: Any
) -> None:
    from pipelines.webhooks import readycloud_webhook_events

    store = hooked.store
    org = store.org_pks()[0]
    for pk in store.order_pks(org)[:10]:
        store.update_order(org, pk, message="pushed")
    assert hooked.hub.wait_idle(30)
    _applied(target, 10)
    resources = resources_for(hooked, target)
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, resources=resources)
        result = readycloud_webhook_events(context)
        assert isinstance(result, dg.SensorResult)
        today = datetime.now(UTC).date().isoformat()
        events = result.asset_events
        assert {(e.asset_key.path[-1], e.partition) for e in events} == {
            (t, today) for t in ("orders", "boxes", "items", "addresses")
        }
        assert all(e.metadata["webhook_events"].value == 10 for e in events)
        assert not result.run_requests
        again = readycloud_webhook_events(
            dg.build_sensor_context(
                instance=instance,
                cursor=result.cursor,
                resources=resources,
            )
        )
        assert not again.asset_events and again.cursor == result.cursor


def _health(server: SandboxServer, target: Any) -> Any:
    from pipelines.webhooks import webhooks_healthy

    defs = dg.Definitions(
        asset_checks=[webhooks_healthy],
        jobs=[dg.define_asset_job("health", selection=dg.AssetSelection.checks(webhooks_healthy))],
        resources=resources_for(server, target),
    )
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("health").execute_in_process(instance=instance)
    [evaluation] = result.get_asset_check_evaluations()
    return evaluation


def test_health_check_warns_about_suspended_webhooks(hooked: SandboxServer, target: Any) -> None:
    from support import warehouse_engine

    assert _health(hooked, target).passed
    for hook in hooked.hub.hooks.values():
        hook.suspended_at = datetime.now(UTC)
    engine = warehouse_engine(target)
    with engine.begin() as conn:  # last looked at more than an hour ago: the check asks the API
        conn.execute(
            sa.text("UPDATE webhook_registrations SET checked_at = :t"),
            {"t": (datetime.now(UTC) - timedelta(hours=2)).isoformat()}
            if target.dialect == "sqlite"
            else {"t": datetime.now(UTC) - timedelta(hours=2)},
        )
    engine.dispose()
    evaluation = _health(hooked, target)
    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    assert "SUSPENDED" in (evaluation.description or "")


def test_freshness_counts_webhook_changes() -> None:
    from pipelines.checks import _freshness

    now = datetime.now(UTC)
    old = now - timedelta(days=1)
    assert not _freshness({"o": old}, {}, 60.0).passed
    assert _freshness({"o": old}, {"o": now - timedelta(minutes=1)}, 60.0).passed
