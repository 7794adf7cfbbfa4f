"""RC_SANDBOX=1: the resource starts (or reuses) the sandbox when a step needs it, never at import."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from pipelines_support import REPO, clean_environ, free_port


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_reuses_a_sandbox_that_already_listens(
    sandbox: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Something on RC_SANDBOX_PORT already: no second server; the settings point at it."""
    from pipelines.resources import RcSyncResource
    from rc_sync.sandbox import ensure_sandbox
    from rc_sync.settings import SandboxSettings

    port = urlsplit(sandbox.base_url).port
    monkeypatch.setenv("RC_SANDBOX_PORT", str(port))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    info = ensure_sandbox(SandboxSettings())
    assert not info.started_here
    assert info.base_url == f"http://127.0.0.1:{port}" and info.token == sandbox.token
    settings = RcSyncResource(sandbox=True).settings()
    assert settings.readycloud_base_url == info.base_url
    assert settings.warehouse_url == f"sqlite:///{tmp_path / 'rc-sync-sandbox.db'}"


def test_warehouse_url_wins_over_the_sandbox_default(
    sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """WAREHOUSE_URL set: sandbox mode keeps it (the sandbox can feed PostgreSQL)."""
    from pipelines.resources import RcSyncResource

    monkeypatch.setenv("RC_SANDBOX_PORT", str(urlsplit(sandbox.base_url).port))
    monkeypatch.setenv("WAREHOUSE_URL", "postgresql://u@db/warehouse")
    # (postgresql:// and postgres:// both mean psycopg 3: the URL comes back in that form)
    url = RcSyncResource(sandbox=True).settings().warehouse_url
    assert url == "postgresql+psycopg://u@db/warehouse"


PROBE = """
import json, socket, httpx, dagster as dg
from pipelines.definitions import defs

def listening(port):
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0

port = {port}
after_import = listening(port)
resource = defs.resources["rc_sync"]
with dg.build_init_resource_context() as context:
    resource.setup_for_execution(context)
settings = resource.settings()
r = httpx.get(settings.readycloud_base_url + "/api/v2/orgs/",
              headers={{"Authorization": "Bearer " + settings.require_token()}})
print(json.dumps({{"after_import": after_import, "url": settings.readycloud_base_url,
                  "status": r.status_code, "orgs": len(r.json()["results"])}}))
"""


def test_the_sandbox_starts_in_the_resource_setup_not_at_import(tmp_path: Path) -> None:
    """A fresh process with RC_SANDBOX=1: importing starts nothing; the resource's setup does."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", PROBE.format(port=port)],
        cwd=REPO,
        env=clean_environ(RC_SANDBOX="1", RC_SANDBOX_PORT=str(port), DAGSTER_HOME=str(tmp_path)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # the sandbox child joins this group: stopped below
    )
    try:
        out, err = process.communicate(timeout=180)
        assert process.returncode == 0, err[-3000:]
        seen = json.loads(out.strip().splitlines()[-1])
        assert seen == {
            "after_import": False,
            "url": f"http://127.0.0.1:{port}",
            "status": 200,
            "orgs": 2,
        }
        assert _listening(port)  # it serves later steps of the same session too
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
