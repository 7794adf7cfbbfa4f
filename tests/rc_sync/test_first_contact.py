"""First contact (issue 11): `check`, `config`, JSON logs, URLs and the wording of config errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from support import cli_env, run_cli, warehouse_engine

from rc_sandbox import SandboxServer


class _Target:
    def __init__(self, url: str, schema: str = "readycloud") -> None:
        self.url = url
        self.schema = schema


def _verdicts(stdout: str) -> dict[str, dict[str, Any]]:
    return {v["item"]: v for v in json.loads(stdout)["verdicts"]}


# -- rc-sync check ----------------------------------------------------------------------


def test_check_passes_against_the_sandbox_with_one_request(
    sandbox: SandboxServer, target, tmp_path: Path
) -> None:
    """A good configuration: every item ok, exit 0, exactly one API request (the orgs list)."""
    env = cli_env(sandbox, target)
    assert run_cli(["migrate"], env, tmp_path).returncode == 0
    before = sandbox.stats.snapshot()["requests"]
    result = run_cli(["check", "--json"], env, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sandbox.stats.snapshot()["requests"] - before == 1
    verdicts = _verdicts(result.stdout)
    for item in ("configuration", "warehouse", "migrations", "writable", "API token", "API"):
        assert verdicts[item]["verdict"] == "ok", verdicts[item]
    for org in sandbox.store.org_pks():
        assert verdicts[f"org {org}"]["verdict"] == "ok"
    human = run_cli(["check"], env, tmp_path)
    assert human.returncode == 0 and "all checks passed" in human.stdout


def test_check_request_goes_through_the_budget_ledger(
    sandbox: SandboxServer, target, tmp_path: Path
) -> None:
    """With a rate limit the check's request is recorded in the ledger as purpose `check`."""
    env = cli_env(sandbox, target, READYCLOUD_RATE_LIMIT="100/min")
    assert run_cli(["migrate"], env, tmp_path).returncode == 0
    assert run_cli(["check"], env, tmp_path).returncode == 0
    status = run_cli(["status", "--json"], env, tmp_path)
    engine = warehouse_engine(target)
    try:
        with engine.connect() as conn:
            purposes = dict(
                conn.execute(
                    sa.text("SELECT purpose, count(*) FROM api_requests GROUP BY purpose")
                ).all()
            )
    finally:
        engine.dispose()
    assert purposes == {"check": 1}, (purposes, status.stdout)


def test_check_with_a_bad_token_fails_the_api_item(
    sandbox: SandboxServer, sqlite_target, tmp_path: Path
) -> None:
    """A refused token: API FAIL, exit 2, the token nowhere in the output."""
    secret = "wrong-token-0d9c1e77"
    env = cli_env(sandbox, sqlite_target, READYCLOUD_API_TOKEN=secret)
    result = run_cli(["check", "--json"], env, tmp_path)
    assert result.returncode == 2
    verdicts = _verdicts(result.stdout)
    assert verdicts["API"]["verdict"] == "FAIL"
    assert "READYCLOUD_API_TOKEN" in verdicts["API"]["detail"]
    assert verdicts["warehouse"]["verdict"] == "ok"
    assert secret not in result.stdout + result.stderr


def test_check_with_an_unreachable_host_and_a_missing_token(sqlite_target, tmp_path: Path) -> None:
    """Nothing listening at the base URL: API FAIL naming READYCLOUD_BASE_URL; no token: FAIL."""
    env = cli_env(None, sqlite_target, READYCLOUD_BASE_URL="http://127.0.0.1:9")
    missing = run_cli(["check", "--json"], env, tmp_path)
    assert missing.returncode == 2
    assert _verdicts(missing.stdout)["API token"]["verdict"] == "FAIL"
    env["READYCLOUD_API_TOKEN"] = "abc123abc123"
    env["RC_SYNC_DEADLINE"] = "3"
    down = run_cli(["check", "--json"], env, tmp_path)
    assert down.returncode == 2
    api = _verdicts(down.stdout)["API"]
    assert api["verdict"] == "FAIL" and "READYCLOUD_BASE_URL" in api["detail"]


def test_check_with_a_bad_configuration(sandbox: SandboxServer, tmp_path: Path) -> None:
    """A bad setting: configuration FAIL in plain words, the rest skipped, exit 2."""
    env = cli_env(sandbox, _Target(f"sqlite:///{tmp_path / 'w.db'}"), READYCLOUD_BASE_URL="ftp://x")
    result = run_cli(["check", "--json"], env, tmp_path)
    assert result.returncode == 2
    verdicts = _verdicts(result.stdout)
    assert verdicts["configuration"]["verdict"] == "FAIL"
    assert "Value error" not in verdicts["configuration"]["detail"]
    assert verdicts["API"]["verdict"] == "skipped"


@pytest.mark.postgres
def test_check_finds_an_unmigrated_postgres(
    sandbox: SandboxServer, pg_target, tmp_path: Path
) -> None:
    """An unmigrated shared warehouse: migrations FAIL naming `rc-sync migrate`, exit 2."""
    result = run_cli(["check", "--json"], cli_env(sandbox, pg_target), tmp_path)
    assert result.returncode == 2
    verdicts = _verdicts(result.stdout)
    assert verdicts["warehouse"]["verdict"] == "ok"
    assert verdicts["migrations"]["verdict"] == "FAIL"
    assert "rc-sync migrate" in verdicts["migrations"]["detail"]
    assert verdicts["API"]["verdict"] == "ok"


def test_check_finds_an_unreachable_postgres(sandbox: SandboxServer, tmp_path: Path) -> None:
    """Nothing listening at the warehouse: warehouse FAIL, exit 2."""
    env = cli_env(sandbox, _Target("postgres://nobody@127.0.0.1:9/none"))
    result = run_cli(["check", "--json"], env, tmp_path)
    assert result.returncode == 2
    verdicts = _verdicts(result.stdout)
    assert verdicts["warehouse"]["verdict"] == "FAIL"
    assert "WAREHOUSE_URL" in verdicts["warehouse"]["detail"]


def _read_only_copy(sandbox: SandboxServer, tmp_path: Path) -> tuple[Path, str]:
    """A synced SQLite file and a URL that opens it read-only (as a read-only file would be)."""
    db = tmp_path / "ro.db"
    env = cli_env(sandbox, _Target(f"sqlite:///{db}"))
    assert run_cli(["sync"], env, tmp_path).returncode == 0
    for suffix in ("-wal", "-shm"):
        assert not Path(f"{db}{suffix}").exists()
    return db, f"sqlite:///file:{db}?mode=ro&uri=true"


def test_read_only_sqlite_check_status_sync_leave_no_wal_files(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    """A read-only SQLite: check says writable FAIL, status works, sync exits 2 saying read-only
    (not 'check that the database is running'), and no -wal/-shm files are left."""
    _db, url = _read_only_copy(sandbox, tmp_path)
    env = cli_env(sandbox, _Target(url))
    checked = run_cli(["check", "--json"], env, tmp_path)
    assert checked.returncode == 2
    assert _verdicts(checked.stdout)["writable"]["verdict"] == "FAIL"
    status = run_cli(["status"], env, tmp_path)
    assert status.returncode == 0, status.stderr
    synced = run_cli(["sync"], env, tmp_path)
    assert synced.returncode == 2, synced.stderr
    assert "read-only" in synced.stderr and "running" not in synced.stderr
    leftovers = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("ro.db"))
    assert leftovers == ["ro.db"]


# -- rc-sync config ---------------------------------------------------------------------


def test_config_shows_each_source_and_never_the_token(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    """Default, .env, environment and option, each named; the token only as set/unset."""
    secret = "config-token-7f2e4411aa"
    (tmp_path / ".env").write_text(f"READYCLOUD_API_TOKEN={secret}\nRC_SYNC_CONCURRENCY=3\n")
    env = cli_env(None, _Target("postgres://me:hunter22@db.example.com/wh"))
    env["READYCLOUD_RATE_LIMIT"] = "20/4s"
    result = run_cli(["--page-size", "50", "config", "--json"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    rows = {r["variable"]: r for r in json.loads(result.stdout)}
    assert rows["READYCLOUD_API_TOKEN"] == {
        "variable": "READYCLOUD_API_TOKEN",
        "value": "set",
        "source": ".env",
    }
    assert (
        rows["RC_SYNC_CONCURRENCY"]["value"] == "3"
        and rows["RC_SYNC_CONCURRENCY"]["source"] == ".env"
    )
    assert rows["READYCLOUD_RATE_LIMIT"]["source"] == "environment"
    assert rows["RC_SYNC_PAGE_SIZE"] == {
        "variable": "RC_SYNC_PAGE_SIZE",
        "value": "50",
        "source": "option",
    }
    assert rows["READYCLOUD_APP"]["source"] == "default"
    assert rows["WAREHOUSE_URL"]["value"].startswith("postgresql+psycopg://me:***@")
    human = run_cli(["config"], env, tmp_path)
    assert human.returncode == 0
    for output in (result.stdout, human.stdout, human.stderr):
        assert secret not in output and "hunter22" not in output
    (tmp_path / ".env").unlink()
    unset = run_cli(["config", "--json"], env, tmp_path)
    token = next(r for r in json.loads(unset.stdout) if r["variable"] == "READYCLOUD_API_TOKEN")
    assert token["value"] == "unset"


# -- log format -------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["option", "environment"])
def test_json_logs_one_object_per_line_without_the_token(
    how: str, sandbox: SandboxServer, sqlite_target, tmp_path: Path
) -> None:
    """--log-format json / RC_SYNC_LOG_FORMAT=json: every stderr line is a JSON object with
    time, level, logger and message; the token never appears, even where a message had it."""
    env = cli_env(sandbox, sqlite_target)
    args = ["sync"]
    if how == "option":
        args = ["--log-format", "json", *args]
    else:
        env["RC_SYNC_LOG_FORMAT"] = "json"
    result = run_cli(args, env, tmp_path)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines
    for line in lines:
        doc = json.loads(line)
        assert set(doc) >= {"time", "level", "logger", "message"}
    assert any("orders read" in json.loads(line)["message"] for line in lines)
    # A message that carries the token (an org pk nobody has, equal to the token) is redacted.
    leak = cli_env(sandbox, sqlite_target, RC_SYNC_LOG_FORMAT="json")
    leaked = run_cli(["--orgs", sandbox.token, "sync"], leak, tmp_path)
    assert sandbox.token not in leaked.stderr
    for line in (x for x in leaked.stderr.splitlines() if x.strip()):
        json.loads(line)  # the final error sentence too


def test_bad_log_format_is_a_configuration_error(sqlite_target, tmp_path: Path) -> None:
    """RC_SYNC_LOG_FORMAT=xml: exit 2, one sentence naming the variable."""
    env = cli_env(None, sqlite_target, RC_SYNC_LOG_FORMAT="xml")
    result = run_cli(["status"], env, tmp_path)
    assert result.returncode == 2
    assert "RC_SYNC_LOG_FORMAT" in result.stderr and "Traceback" not in result.stderr


# -- URLs and the wording of configuration errors (defects 2 and 11) --------------------


@pytest.mark.postgres
@pytest.mark.parametrize("command", [["migrate"], ["status"], ["sync"]])
def test_postgres_scheme_urls_work(
    command: list[str], sandbox: SandboxServer, pg_target, tmp_path: Path
) -> None:
    """postgres:// (Heroku, Render, Supabase) means psycopg 3, like postgresql://."""
    url = pg_target.url.replace("postgresql+psycopg://", "postgres://", 1)
    assert url.startswith("postgres://")
    env = cli_env(sandbox, _Target(url, pg_target.schema))
    assert run_cli(["migrate"], env, tmp_path).returncode == 0
    result = run_cli(command, env, tmp_path)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("url", "command"),
    [
        ("mysql://root@localhost/wh", ["status"]),
        ("not a url", ["status"]),
        ("postgresql+psycopg2://me@localhost/wh", ["status"]),
        ("sqlite:////no/such/folder/wh.db", ["status"]),
        ("not a url", ["sync"]),
        ("not a url", ["migrate"]),
        ("not a url", ["check"]),
        ("sqlite:////no/such/folder/wh.db", ["plan"]),
    ],
)
def test_unusable_warehouse_urls_are_configuration_errors(
    url: str, command: list[str], sandbox: SandboxServer, tmp_path: Path
) -> None:
    """Any unusable WAREHOUSE_URL: exit 2 and one sentence naming it, for every command."""
    result = run_cli(command, cli_env(sandbox, _Target(url)), tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert "WAREHOUSE_URL" in output and "Traceback" not in output
    assert "run failed" not in output


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        (
            "READYCLOUD_BASE_URL",
            "ftp://example.com",
            "READYCLOUD_BASE_URL must start with https://",
        ),
        ("RC_SYNC_PAGE_SIZE", "0", "RC_SYNC_PAGE_SIZE must be at least 1"),
        ("RC_SYNC_TIMEOUT", "soon", "RC_SYNC_TIMEOUT must be a number"),
        ("WAREHOUSE_URL", "mysql://x/y", "WAREHOUSE_URL uses 'mysql'"),
    ],
)
def test_config_errors_speak_plainly(
    variable: str, value: str, expected: str, sqlite_target, tmp_path: Path
) -> None:
    """No pydantic wording (`field: Value error, ...`, `Input should be ...`) in config errors."""
    env = cli_env(None, sqlite_target, READYCLOUD_API_TOKEN="abc123abc123", **{variable: value})
    result = run_cli(["status"], env, tmp_path)
    assert result.returncode == 2
    assert expected in result.stderr
    for leak in ("Value error", "Input should", "readycloud_base_url:", "page_size:"):
        assert leak not in result.stderr


def test_sqlite_open_failure_does_not_mention_a_running_database(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    """A SQLite path that cannot be opened (a folder): the message is about the file, not a server."""
    (tmp_path / "adir.db").mkdir()
    env = cli_env(sandbox, _Target(f"sqlite:///{tmp_path / 'adir.db'}"))
    result = run_cli(["status"], env, tmp_path)
    assert result.returncode == 2
    assert "running" not in result.stderr and "SQLite" in result.stderr
