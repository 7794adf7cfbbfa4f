"""One default sandbox size everywhere, and generated data that reach up to their end (issue 11)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import click
import pytest

from rc_sandbox import SandboxConfig, SandboxStore
from rc_sync.cli import cli
from rc_sync.settings import SandboxSettings


def _option_default(command: str, name: str) -> object:
    found = cli.commands[command]
    assert isinstance(found, click.Command)
    (option,) = [p for p in found.params if p.name == name]
    return option.default


def test_one_default_size_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RC_SANDBOX_ORDERS", raising=False)
    sizes = {
        "SandboxConfig": SandboxConfig().orders,
        "rc-sync sandbox": _option_default("sandbox", "n_orders"),
        "rc-sync demo": _option_default("demo", "n_orders"),
        "Dagster sandbox mode": SandboxSettings().orders,
    }
    assert set(sizes.values()) == {1000}, sizes


def _nested(store: SandboxStore) -> list[datetime]:
    return [
        order.nested_updated_at
        for org in store.org_pks()
        for order in (store.get_order(org, pk) for pk in store.order_pks(org))
        if order is not None
    ]


def test_default_data_reach_now_and_recent_days_have_rows() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    store = SandboxStore(SandboxConfig())
    after = datetime.now(UTC)
    moments = _nested(store)
    assert before <= store.data_until <= after
    assert max(moments) <= store.data_until
    assert max(moments) >= store.data_until - timedelta(hours=6)
    last_day = [m for m in moments if m > store.data_until - timedelta(days=1)]
    last_30 = [m for m in moments if m > store.data_until - timedelta(days=30)]
    assert len(last_day) >= 10 and len(last_30) >= 100, (len(last_day), len(last_30))
    assert min(moments) >= store.data_until - timedelta(days=731)


def test_pinned_end_gives_the_same_data_and_a_date_means_its_midnight() -> None:
    first = SandboxStore(SandboxConfig(orders=200, seed=4, data_until=date(2025, 1, 1)))
    again = SandboxStore(
        SandboxConfig(orders=200, seed=4, data_until=datetime(2025, 1, 1, tzinfo=UTC))
    )
    assert first.data_until == datetime(2025, 1, 1, tzinfo=UTC)
    assert _nested(first) == _nested(again)
    assert max(_nested(first)) <= first.data_until


def test_naive_end_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        SandboxConfig(data_until=datetime(2025, 1, 1))
