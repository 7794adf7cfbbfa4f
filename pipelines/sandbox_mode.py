"""Sandbox mode (RC_SANDBOX=1): `dagster dev` against the built-in ReadyCloud sandbox.

When the code location loads with RC_SANDBOX=1 it makes sure a sandbox listens on
127.0.0.1:RC_SANDBOX_PORT (default 8765), starting one in this process if the port is free,
and the resources default to the sandbox's base URL and token and to an embedded SQLite
warehouse. Every process that loads the code location (code server, run workers) finds the
same sandbox: the first one starts it, the others see the port taken and just use it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SANDBOX_ENV = "RC_SANDBOX"
PORT_ENV = "RC_SANDBOX_PORT"
ORDERS_ENV = "RC_SANDBOX_ORDERS"
WAREHOUSE_ENV = "RC_SANDBOX_WAREHOUSE_URL"
DEFAULT_PORT = 8765
DEFAULT_ORDERS = 2000
SANDBOX_ORGS = 2
SANDBOX_SEED = 1
SANDBOX_HOST = "127.0.0.1"

_lock = threading.Lock()
_server: Any = None  # the SandboxServer this process started, kept alive for the process


@dataclass(frozen=True)
class SandboxInfo:
    """Where the sandbox listens and the token it accepts."""

    base_url: str
    token: str
    started_here: bool


def enabled() -> bool:
    """True when RC_SANDBOX is set to 1/true/yes."""
    return os.environ.get(SANDBOX_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def port() -> int:
    """The fixed sandbox port: RC_SANDBOX_PORT or 8765."""
    value = os.environ.get(PORT_ENV, "").strip()
    return int(value) if value else DEFAULT_PORT


def _listening(host: str, port_: int) -> bool:
    """True when something accepts TCP connections on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port_)) == 0


def _default_token() -> str:
    """The token the sandbox accepts unless told otherwise."""
    from rc_sandbox import SandboxConfig

    return str(SandboxConfig().token)


def ensure_sandbox() -> SandboxInfo:
    """Start the sandbox on the fixed port unless something already listens there."""
    global _server
    port_ = port()
    base_url = f"http://{SANDBOX_HOST}:{port_}"
    with _lock:
        if _server is not None:
            return SandboxInfo(str(_server.base_url), str(_server.token), started_here=True)
        token = _default_token()
        if _listening(SANDBOX_HOST, port_):
            return SandboxInfo(base_url, token, started_here=False)
        from rc_sandbox import SandboxConfig, SandboxServer

        orders = int(os.environ.get(ORDERS_ENV, "").strip() or DEFAULT_ORDERS)
        server = SandboxServer(
            SandboxConfig(
                orgs=SANDBOX_ORGS,
                orders=orders,
                seed=SANDBOX_SEED,
                host=SANDBOX_HOST,
                port=port_,
                token=token,
            )
        )
        try:
            server.start()
        except OSError:
            # Another process won the race for the port between the probe and the bind.
            if _listening(SANDBOX_HOST, port_):
                return SandboxInfo(base_url, token, started_here=False)
            raise
        _server = server
        log.info("RC_SANDBOX=1: started the ReadyCloud sandbox at %s", server.base_url)
        return SandboxInfo(str(server.base_url), str(server.token), started_here=True)


def warehouse_url() -> str:
    """The sandbox warehouse: WAREHOUSE_URL if set, else SQLite next to the Dagster instance."""
    explicit = os.environ.get("WAREHOUSE_URL", "").strip() or os.environ.get(WAREHOUSE_ENV, "")
    if explicit.strip():
        return explicit.strip()
    home = os.environ.get("DAGSTER_HOME", "").strip()
    folder = Path(home) if home else Path.cwd()
    return f"sqlite:///{(folder / 'rc-sync-sandbox.db').resolve()}"
