"""RC_SANDBOX=1: the code location starts (or reuses) the sandbox and points the resources at it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from pipelines_support import REPO, clean_environ, free_port


def test_reuses_a_sandbox_that_already_listens(
    sandbox: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Something on RC_SANDBOX_PORT already: no second server; resources point at it."""
    from pipelines import sandbox_mode
    from pipelines.definitions import build_resources

    port = urlsplit(sandbox.base_url).port
    monkeypatch.setenv("RC_SANDBOX", "1")
    monkeypatch.setenv("RC_SANDBOX_PORT", str(port))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    info = sandbox_mode.ensure_sandbox()
    assert not info.started_here
    assert info.base_url == f"http://127.0.0.1:{port}" and info.token == sandbox.token
    resources = build_resources()
    assert resources["readycloud"].base_url == info.base_url
    warehouse = resources["warehouse"]
    assert warehouse.url == f"sqlite:///{tmp_path / 'rc-sync-sandbox.db'}"
    assert warehouse.auto_migrate is True


def test_warehouse_url_wins_over_the_sandbox_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """WAREHOUSE_URL set: sandbox mode keeps it (the sandbox can feed PostgreSQL)."""
    from pipelines import sandbox_mode

    monkeypatch.setenv("WAREHOUSE_URL", "postgresql://u@db/warehouse")
    assert sandbox_mode.warehouse_url() == "postgresql://u@db/warehouse"


def test_loading_the_code_location_starts_the_sandbox(tmp_path: Path) -> None:
    """A fresh process with RC_SANDBOX=1 serves the API on the fixed port while it lives."""
    port = free_port()
    probe = (
        "import json, httpx\n"
        "from pipelines.definitions import defs\n"
        "rc = defs.resources['readycloud']\n"
        "r = httpx.get(rc.base_url + '/api/v2/orgs/', "
        "headers={'Authorization': 'Bearer ' + rc.api_token})\n"
        "print(json.dumps({'url': rc.base_url, 'status': r.status_code, "
        "'orgs': len(r.json()['results'])}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=REPO,
        env=clean_environ(RC_SANDBOX="1", RC_SANDBOX_PORT=str(port), DAGSTER_HOME=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen == {"url": f"http://127.0.0.1:{port}", "status": 200, "orgs": 2}
