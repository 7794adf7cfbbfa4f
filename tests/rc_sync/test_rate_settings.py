"""READYCLOUD_RATE_LIMIT and its deprecated alias RC_SYNC_MAX_RPS."""

from __future__ import annotations

import pytest

from rc_extract.budget import Rate
from rc_sync.errors import ConfigError
from rc_sync.settings import load_settings


def test_default_is_readyclouds_documented_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("READYCLOUD_RATE_LIMIT", raising=False)
    assert load_settings().rate == Rate(30, 60.0)


def test_rate_limit_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("READYCLOUD_RATE_LIMIT", "20/4s")
    assert load_settings().rate == Rate(20, 4.0)
    monkeypatch.setenv("READYCLOUD_RATE_LIMIT", "off")
    assert load_settings().rate is None


def test_a_bad_rate_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("READYCLOUD_RATE_LIMIT", "thirty a minute")
    with pytest.raises(ConfigError, match="READYCLOUD_RATE_LIMIT"):
        load_settings()


def test_max_rps_is_a_deprecated_alias(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("READYCLOUD_RATE_LIMIT", raising=False)
    monkeypatch.setenv("RC_SYNC_MAX_RPS", "0.5")
    assert load_settings().rate == Rate(30, 60.0)
    assert "deprecated" in caplog.text
    monkeypatch.setenv("READYCLOUD_RATE_LIMIT", "10/min")  # the new name wins
    assert load_settings().rate == Rate(10, 60.0)
