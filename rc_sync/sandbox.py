"""The built-in sandbox as a service for Dagster's sandbox mode (RC_SANDBOX=1).

The Dagster resource calls `ensure_sandbox()` when a run step sets it up (never when the code
location is imported). If nothing listens on 127.0.0.1:RC_SANDBOX_PORT yet, it starts
`rc-sync sandbox` there as a child process that outlives the step, so every later step and
run of the same `dagster dev` session reads the same data; it stops with the process group
(Ctrl-C or SIGTERM of `dagster dev`). Every process that asks finds the same sandbox: the
first one starts it, the others see the port taken and use it.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

from rc_sync.errors import ConfigError
from rc_sync.settings import SandboxSettings

log = logging.getLogger(__name__)

SANDBOX_HOST = "127.0.0.1"
SANDBOX_ORGS = 2
SANDBOX_SEED = 1
START_TIMEOUT_S = 120.0

_lock = threading.Lock()


@dataclass(frozen=True)
class SandboxInfo:
    """Where the sandbox listens and the token it accepts."""

    base_url: str
    token: str
    started_here: bool


def _listening(host: str, port: int) -> bool:
    """True when something accepts TCP connections on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def sandbox_token() -> str:
    """The token the sandbox accepts (its public, fixed default: not a secret)."""
    from rc_sandbox import SandboxConfig

    return str(SandboxConfig().token)


def ensure_sandbox(settings: SandboxSettings) -> SandboxInfo:
    """Start the sandbox on the fixed port unless something already listens there."""
    base_url = f"http://{SANDBOX_HOST}:{settings.port}"
    token = sandbox_token()
    with _lock:
        if _listening(SANDBOX_HOST, settings.port):
            return SandboxInfo(base_url, token, started_here=False)
        command = [
            sys.executable,
            "-m",
            "rc_sync.cli",
            "sandbox",
            "--host",
            SANDBOX_HOST,
            "--port",
            str(settings.port),
            "--orgs",
            str(SANDBOX_ORGS),
            "--orders",
            str(settings.orders),
            "--seed",
            str(SANDBOX_SEED),
            "--token",
            token,
            *(["--data-until", settings.data_until] if settings.data_until else []),
        ]
        # Same process group as the caller: it stops together with `dagster dev`.
        process = subprocess.Popen(  # noqa: S603 - our own fixed command
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if _listening(SANDBOX_HOST, settings.port):
                log.info("RC_SANDBOX=1: started the ReadyCloud sandbox at %s", base_url)
                return SandboxInfo(base_url, token, started_here=True)
            if process.poll() is not None:
                # Lost the race for the port to another process: use theirs.
                if _listening(SANDBOX_HOST, settings.port):
                    return SandboxInfo(base_url, token, started_here=False)
                raise ConfigError(
                    f"RC_SANDBOX=1: the sandbox could not listen on {SANDBOX_HOST}:{settings.port}; "
                    "set RC_SANDBOX_PORT to a free port"
                )
            time.sleep(0.2)
        process.kill()
        raise ConfigError(f"RC_SANDBOX=1: the sandbox did not start in {START_TIMEOUT_S:.0f}s")
