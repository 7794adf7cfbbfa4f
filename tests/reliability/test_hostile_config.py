"""Hardening, input side: a token with a line break, org pks that are path segments, system
schemas and `*.localhost` hosts are refused before any request is made and before anything is
written (issue 15, defects 3, 8 and 9)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from reliability_support import Harness
from support import warehouse_engine

from rc_common.paths import orders_path
from rc_extract.client import ReadyCloudClient, normalize_base_url
from rc_extract.errors import InsecureTransportError
from warehouse.db import WarehouseConfigError, make_engine

pytestmark = pytest.mark.reliability

BROKEN_TOKEN = "tok-7a1c9e55d2\nline2-SECRET-4be0"


def _sqlite_file(target) -> Path:
    return Path(target.url.removeprefix("sqlite:///"))


def _state_rows(target) -> list[tuple[str, ...]]:
    """sync_state rows of the warehouse ([] when it was never created)."""
    if target.dialect == "sqlite" and not _sqlite_file(target).exists():
        return []
    engine = warehouse_engine(target)
    try:
        with engine.connect() as conn:
            if "sync_state" not in sa.inspect(conn).get_table_names():
                return []
            return [tuple(r) for r in conn.execute(sa.text("SELECT org_pk FROM sync_state"))]
    finally:
        engine.dispose()


# -- defect 3: a token with a line break -------------------------------------------------------


@pytest.mark.parametrize("token", [BROKEN_TOKEN, "tok-abc\r\ndef-SECRET", "tok-a\x00b-SECRET"])
def test_token_with_control_character_exits_2_before_any_request(
    harness: Harness, sqlite_target, token: str
) -> None:
    server = harness.sandbox(orders=10)
    env = harness.env(server, sqlite_target, READYCLOUD_API_TOKEN=token.replace("\x00", "\x01"))
    proc = harness.run_cli(["-v", "sync"], env)
    assert proc.returncode == 2, proc.stderr
    assert "the token contains a line break or control character" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert server.stats.snapshot()["requests"] == 0
    output = proc.stdout + proc.stderr
    for part in filter(None, token.replace("\r", "\n").replace("\x00", "\n").split("\n")):
        assert part not in output, f"a part of the token was printed: {part!r}"
    assert _state_rows(sqlite_target) == []


def test_client_refuses_a_token_with_a_control_character() -> None:
    with pytest.raises(ValueError, match="line break or control character") as caught:
        ReadyCloudClient("https://www.readycloud.com", BROKEN_TOKEN)
    assert "SECRET" not in str(caught.value)


def test_redaction_covers_escaped_and_partial_forms() -> None:
    from rc_common.redact import redact

    secret = BROKEN_TOKEN
    samples = [
        f"Illegal header value b'Bearer {secret.splitlines()[0]}'",  # the part before the break
        f"header {secret!r}",  # Python repr: \\n escaped
        'json {"t": "tok-7a1c9e55d2\\nline2-SECRET-4be0"}',  # JSON escape
        "url ?bearer_token=tok-7a1c9e55d2%0Aline2-SECRET-4be0",  # percent-encoded
        f"raw {secret}",
        f"second line only: {secret.splitlines()[1]}",
    ]
    for text in samples:
        cleaned = redact(text, secret)
        assert "tok-7a1c9e55d2" not in cleaned and "line2-SECRET-4be0" not in cleaned, cleaned
    assert redact("nothing secret here", secret) == "nothing secret here"
    assert redact("a short tok", "tok") == "a short tok"  # tokens too short to redact safely


# -- defect 8: org pks that are dot segments ----------------------------------------------------


@pytest.mark.parametrize("orgs", ["..", ".", "a,,b", "a, ,b", ",..", "b,"])
def test_dot_segment_orgs_are_refused_before_any_request(
    harness: Harness, sqlite_target, orgs: str
) -> None:
    server = harness.sandbox(orders=10)
    env = harness.env(server, sqlite_target, READYCLOUD_ORGS=orgs)
    proc = harness.run_cli(["sync"], env)
    assert proc.returncode == 2, proc.stderr
    assert "org pk" in proc.stderr and "Traceback" not in proc.stderr
    assert server.stats.snapshot()["requests"] == 0
    assert _state_rows(sqlite_target) == []
    assert not list(_sqlite_file(sqlite_target).parent.glob("*.lock"))


def test_cli_orgs_option_is_validated_too(harness: Harness, sqlite_target) -> None:
    server = harness.sandbox(orders=10)
    proc = harness.run_cli(["--orgs", "..", "sync"], harness.env(server, sqlite_target))
    assert proc.returncode == 2 and "org pk" in proc.stderr
    assert server.stats.snapshot()["requests"] == 0


def test_org_pks_are_percent_encoded_and_dot_segments_refused() -> None:
    assert orders_path("a/b") == "/api/v2/orgs/a%2Fb/orders/"
    assert orders_path("a b?c#d") == "/api/v2/orgs/a%20b%3Fc%23d/orders/"
    assert orders_path("a.b") == "/api/v2/orgs/a.b/orders/"
    for bad in ("", ".", "..", " "):
        with pytest.raises(ValueError, match="org pk"):
            orders_path(bad)


def test_engine_refuses_bad_orgs_before_any_request(harness: Harness, sqlite_target) -> None:
    from rc_sync.errors import ConfigError

    server = harness.sandbox(orders=10)
    engine = harness.engine(server, sqlite_target)
    with pytest.raises(ConfigError, match="org pk"):
        engine.sync_incremental([".."])
    assert server.stats.snapshot()["requests"] == 0
    assert _state_rows(sqlite_target) == []


# -- defect 9: system schemas, *.localhost -----------------------------------------------------


@pytest.mark.parametrize(
    "schema", ["information_schema", "pg_catalog", "pg_toast", "PG_Catalog", "pg_temp_3"]
)
def test_system_schemas_are_refused(schema: str, harness: Harness, sqlite_target) -> None:
    with pytest.raises(WarehouseConfigError, match="system schema"):
        make_engine("postgresql+psycopg://postgres@127.0.0.1:5432/postgres", schema)
    server = harness.sandbox(orders=10)
    env = harness.env(server, sqlite_target, WAREHOUSE_SCHEMA=schema)
    proc = harness.run_cli(["migrate"], env)
    assert proc.returncode == 2 and "system schema" in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    "url", ["http://evil.localhost:8000", "http://a.b.localhost", "http://x.localhost./"]
)
def test_dot_localhost_is_refused_for_plain_http(url: str) -> None:
    with pytest.raises(InsecureTransportError, match="localhost"):
        normalize_base_url(url)


def test_plain_localhost_and_loopback_addresses_stay_allowed() -> None:
    for url in (
        "http://localhost:8000",
        "http://127.0.0.1:1",
        "http://[::1]:2",
        "https://a.localhost",
    ):
        assert normalize_base_url(url).startswith(("http://", "https://"))
