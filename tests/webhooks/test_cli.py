"""`rc-sync webhooks register/list/remove/apply/serve` and `status` as a user runs them."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from support import cli_env, run_cli
from webhook_support import event_rows

from rc_sandbox import SandboxConfig, SandboxServer

pytestmark = pytest.mark.parametrize("target", ["sqlite"], indirect=True)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def sandbox() -> Any:
    with SandboxServer(SandboxConfig(orgs=2, orders=60, seed=2, control=True)) as server:
        yield server


def test_register_with_a_read_only_token_names_the_scope(
    sandbox: SandboxServer, target: Any, tmp_path: Path
) -> None:
    sandbox.config.update(read_only_token=True)
    env = cli_env(sandbox, target)
    result = run_cli(
        ["webhooks", "register", "--remote-url", "https://hooks.example.com"], env, tmp_path
    )
    assert result.returncode == 2, result.stderr
    assert "order" in result.stderr and "read_only" in result.stderr
    assert sandbox.token not in result.stderr + result.stdout


def test_register_refuses_plain_http_off_loopback(
    sandbox: SandboxServer, target: Any, tmp_path: Path
) -> None:
    env = cli_env(sandbox, target)
    result = run_cli(
        ["webhooks", "register", "--remote-url", "http://hooks.example.com"], env, tmp_path
    )
    assert result.returncode == 2 and "https://" in result.stderr


def test_register_serve_list_status_remove(
    sandbox: SandboxServer, target: Any, tmp_path: Path
) -> None:
    env = cli_env(sandbox, target)
    assert run_cli(["sync"], env, tmp_path).returncode == 0
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    one = sandbox.store.org_pks()[0]
    reg = run_cli(["webhooks", "register", "--remote-url", base, "--orgs", one], env, tmp_path)
    assert reg.returncode == 0, reg.stderr
    assert f"{base}/readycloud/{one}/orders" in reg.stdout
    tokens = [h.token for h in sandbox.hub.hooks.values()]
    assert len(tokens) == 1
    serve = subprocess.Popen(
        [sys.executable, "-m", "rc_sync.cli", "webhooks", "serve", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(0.5)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        pk = sandbox.store.order_pks(one)[0]
        sandbox.store.update_order(one, pk, message="pushed")
        assert sandbox.hub.wait_idle(30)
        deadline = time.monotonic() + 10
        while not any(e["applied_at"] for e in event_rows(target)):
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        serve.send_signal(signal.SIGINT)
        out, err = serve.communicate(timeout=30)
    assert f"method=PUT order={pk} status=200" in err
    assert "receiving webhooks at" in err
    for token in tokens:
        assert token not in out + err
    listed = run_cli(["webhooks", "list"], env, tmp_path)
    assert listed.returncode == 0 and "orders" in listed.stdout and "SUSPENDED" not in listed.stdout
    sync = run_cli(["sync", "--json"], env, tmp_path)
    assert sync.returncode == 0
    status = run_cli(["status", "--json"], env, tmp_path)
    rows = {r["org_pk"]: r for r in json.loads(status.stdout)}
    assert rows[one]["webhooks"]["hits"] == 1 and rows[one]["webhooks"]["miss_rate"] == 0.0
    human = run_cli(["status"], env, tmp_path)
    assert "miss rate" in human.stdout
    removed = run_cli(["webhooks", "remove"], env, tmp_path)
    assert removed.returncode == 0 and "removed 1" in removed.stdout
    assert not sandbox.hub.hooks


def test_a_suspended_webhook_is_said_loudly(
    sandbox: SandboxServer, target: Any, tmp_path: Path
) -> None:
    sandbox.config.update(webhook_suspend_after=2, webhook_backoff_s=0.01)
    env = cli_env(sandbox, target)
    assert run_cli(["sync"], env, tmp_path).returncode == 0
    # nothing listens on this port: deliveries fail and the webhook is suspended
    reg = run_cli(["webhooks", "register", "--remote-url", "http://127.0.0.1:9"], env, tmp_path)
    assert reg.returncode == 0, reg.stderr
    org = sandbox.store.org_pks()[0]
    for pk in sandbox.store.order_pks(org)[:3]:
        sandbox.store.update_order(org, pk, message="x")
    sandbox.hub.wait_idle(30)
    listed = run_cli(["webhooks", "list"], env, tmp_path)
    assert "SUSPENDED" in listed.stdout
    assert "WEBHOOK SUSPENDED" in listed.stderr and "webhooks register" in listed.stderr
    status = run_cli(["status"], env, tmp_path)
    assert "SUSPENDED" in status.stdout + status.stderr
    # registering again re-enables it (replaces the suspended webhook)
    again = run_cli(
        ["webhooks", "register", "--remote-url", "http://127.0.0.1:9", "--orgs", org], env, tmp_path
    )
    assert "replaced 1" in again.stdout
