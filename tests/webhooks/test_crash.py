"""SIGKILL the receiver during a stream of deliveries: the sandbox retries, nothing is lost or doubled."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from support import (
    assert_no_duplicate_keys,
    assert_warehouse_matches,
    cli_env,
    make_settings,
)
from support.expected import expected_rows
from webhook_support import event_rows, mutate_updates

from rc_sandbox import SandboxConfig, SandboxServer
from rc_sync.engine import SyncEngine
from rc_sync.webhooks import service
from warehouse import webhooks as wh
from warehouse.db import make_engine

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "rc_sync.cli", "webhooks", "serve", "--port", str(port)],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    end = time.monotonic() + 30
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise AssertionError("the receiver did not start")


def test_sigkill_during_a_stream_loses_nothing(target: Any, tmp_path: Path) -> None:
    config = SandboxConfig(
        orgs=2,
        orders=300,
        seed=21,
        control=True,
        webhook_backoff_s=0.05,
        webhook_max_attempts=10_000,
        webhook_suspend_after=1_000_000,
        webhook_timeout_s=2.0,
    )
    with SandboxServer(config) as server:
        settings = make_settings(server, target)
        with SyncEngine(settings, auto_migrate=True) as engine:
            engine.sync_incremental()
        port = _free_port()
        service.register(settings, f"http://127.0.0.1:{port}")
        env = cli_env(server, target)
        proc = _start(env, port)
        stream = threading.Thread(target=mutate_updates, args=(server, 400), kwargs={"seed": 9})
        rng = random.Random(13)
        kills = 0
        try:
            stream.start()
            # mutate_updates is fast; also kill while retries of the backlog arrive
            for _ in range(4):
                time.sleep(rng.uniform(0.05, 0.6))
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)
                kills += 1
                time.sleep(rng.uniform(0.0, 0.3))
                proc = _start(env, port)
            stream.join(60)
            assert server.hub.wait_idle(120), "deliveries did not finish after the restarts"
            engine = make_engine(target.url, target.schema)
            try:
                end = time.monotonic() + 60
                while wh.pending_events(engine, 1):
                    assert time.monotonic() < end, "stored events were not applied"
                    time.sleep(0.05)
            finally:
                engine.dispose()
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        assert kills == 4
        log = server.hub.log
        assert {r.fate for r in log} == {"delivered"}, "a delivery was given up"
        assert any(r.attempts > 1 for r in log), "no delivery needed a retry: the kills missed"
        assert_warehouse_matches(target, expected_rows(server.store))
        assert_no_duplicate_keys(target)
        stored = {(e["org_pk"], e["order_pk"], e["nested_updated_at"]) for e in event_rows(target)}
        from rc_common.timefmt import parse_api_datetime

        delivered = {
            (r.org_pk, r.order_pk, parse_api_datetime(r.nested_updated_at))
            for r in log
            if r.nested_updated_at
        }
        assert delivered <= stored
