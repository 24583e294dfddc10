"""A Wiro-compatible emulator ("sandbox") for demos, tests and benchmarks.

It serves the ``/v1`` API (Run, Task Detail/List/Cancel/Kill, File Upload, Tool Detail/List)
for the models of its catalogue (``catalogue/*.json``, ``PixVerse/image-to-video-v5`` first),
a CDN for outputs and the task WebSocket, over real sockets, with seeded, reproducible fault
injection. It is an independent stand-in: it imports nothing from the client side of
batch-runner.

    async with Sandbox(SandboxConfig(run_seconds=(0, 0))) as sb:
        ...  # point a client at sb.base_url / sb.socket_url with sb.api_key, sb.api_secret
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

#: Public name -> its module; loaded on first use so that the CLI's ``--help`` and
#: ``--version`` never import aiohttp's server for nothing.
_EXPORTS = {
    "sign": "auth",
    "FAULT_NAMES": "config",
    "SOCKET_MODES": "config",
    "FaultConfig": "config",
    "SandboxConfig": "config",
    "DEFAULT_SLUG": "models",
    "MODELS": "models",
    "PRICES_USD": "models",
    "ModelSpec": "models",
    "Sandbox": "server",
    "SandboxTask": "tasks",
}

__all__ = [
    "DEFAULT_SLUG",
    "FAULT_NAMES",
    "MODELS",
    "PRICES_USD",
    "SOCKET_MODES",
    "FaultConfig",
    "ModelSpec",
    "Sandbox",
    "SandboxConfig",
    "SandboxTask",
    "sign",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'batch_runner.sandbox' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from .auth import sign
    from .config import FAULT_NAMES, SOCKET_MODES, FaultConfig, SandboxConfig
    from .models import DEFAULT_SLUG, MODELS, PRICES_USD, ModelSpec
    from .server import Sandbox
    from .tasks import SandboxTask
