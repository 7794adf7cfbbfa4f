"""Running the sandbox: uvicorn in a background thread (tests) or in the foreground (CLI)."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from types import TracebackType

import uvicorn

from rc_sandbox.app import build_app
from rc_sandbox.config import SandboxConfig
from rc_sandbox.faults import SandboxStats
from rc_sandbox.store import SandboxStore
from rc_sandbox.webhooks import WebhookHub

logger = logging.getLogger(__name__)


def _bind(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket on host:port (port 0 = a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def _base_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


class _Server(uvicorn.Server):
    """uvicorn.Server that reports when it accepts connections."""

    def __init__(
        self,
        config: uvicorn.Config,
        on_started: Callable[[], None],
        stop: threading.Event | None = None,
    ) -> None:
        super().__init__(config)
        self._on_started = on_started
        self._stop = stop

    async def on_tick(self, counter: int) -> bool:
        if self._stop is not None and self._stop.is_set():
            return True
        return await super().on_tick(counter)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self._on_started()


def _uvicorn_config(app: object, config: SandboxConfig, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        log_level=log_level,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=1,
        timeout_keep_alive=30,
    )


class SandboxServer:
    """A ReadyCloud-v2-compatible server on a background thread; use as a context manager."""

    def __init__(
        self, config: SandboxConfig | None = None, store: SandboxStore | None = None
    ) -> None:
        """Generate the data (or reuse `store`); the server starts with `start()` or `with`."""
        self.config = config or SandboxConfig()
        self.store = store or SandboxStore(self.config)
        self.stats = SandboxStats()
        self.hub = WebhookHub(self.config)
        self.store.listeners.append(self.hub.announce)
        self.app = build_app(self.store, self.config, self.stats, self.hub)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._started = threading.Event()

    @property
    def base_url(self) -> str:
        """http://host:port of the running server."""
        if self._socket is None:
            raise RuntimeError("the sandbox is not running")
        return _base_url(self._socket)

    @property
    def token(self) -> str:
        """The bearer token the sandbox accepts."""
        return self.config.token

    @property
    def running(self) -> bool:
        """Whether the server thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout: float = 10.0) -> SandboxServer:
        """Start uvicorn on a free port (or config.port) and wait until it accepts connections."""
        if self.running:
            return self
        self._started.clear()
        self._socket = _bind(self.config.host, self.config.port)
        self._server = _Server(_uvicorn_config(self.app, self.config, "warning"), self._started.set)
        sock = self._socket
        server = self._server
        self._thread = threading.Thread(
            target=lambda: server.run(sockets=[sock]), name="rc-sandbox", daemon=True
        )
        self._thread.start()
        if not self._started.wait(timeout):
            self.stop()
            raise RuntimeError("the sandbox server did not start")
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop uvicorn and wait for its thread; safe to call twice."""
        server, thread = self._server, self._thread
        self.hub.stop()
        if server is not None:
            server.should_exit = True
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive() and server is not None:
                server.force_exit = True
                thread.join(timeout)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = None
        self._socket = None

    def __enter__(self) -> SandboxServer:
        """Start the server."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the server."""
        self.stop()


def serve_forever(
    config: SandboxConfig | None = None,
    on_ready: Callable[[str], None] | None = None,
    store: SandboxStore | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Serve in the foreground until interrupted (or `stop` is set); `on_ready(base_url)` runs once it listens."""
    config = config or SandboxConfig()
    store = store or SandboxStore(config)
    hub = WebhookHub(config)
    store.listeners.append(hub.announce)
    app = build_app(store, config, SandboxStats(), hub)
    sock = _bind(config.host, config.port)
    base_url = _base_url(sock)

    def started() -> None:
        if on_ready is not None:
            on_ready(base_url)

    server = _Server(_uvicorn_config(app, config, "warning"), started, stop)
    try:
        server.run(sockets=[sock])
    finally:
        hub.stop()
        sock.close()
