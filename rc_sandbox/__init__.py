"""A ReadyCloud-v2-compatible sandbox server with generated data and fault knobs."""

from rc_sandbox.config import FAULT_KINDS, SandboxConfig
from rc_sandbox.faults import SandboxStats
from rc_sandbox.server import SandboxServer, serve_forever
from rc_sandbox.store import OrderQuery, SandboxStore

__all__ = [
    "FAULT_KINDS",
    "OrderQuery",
    "SandboxConfig",
    "SandboxServer",
    "SandboxStats",
    "SandboxStore",
    "serve_forever",
]
