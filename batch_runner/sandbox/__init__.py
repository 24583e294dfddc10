"""A Wiro-compatible emulator ("sandbox") for demos, tests and benchmarks.

It serves the ``/v1`` API (Run, Task Detail/List/Cancel/Kill, File Upload, Tool Detail/List)
for the models of its catalogue (``catalogue/*.json``, ``PixVerse/image-to-video-v5`` first),
a CDN for outputs and the task WebSocket, over real sockets, with seeded, reproducible fault
injection. It is an independent stand-in: it imports nothing from the client side of
batch-runner.

    async with Sandbox(SandboxConfig(run_seconds=(0, 0))) as sb:
        ...  # point a client at sb.base_url / sb.socket_url with sb.api_key, sb.api_secret
"""

from .auth import sign
from .config import FAULT_NAMES, SOCKET_MODES, FaultConfig, SandboxConfig
from .models import DEFAULT_SLUG, MODELS, PRICES_USD, ModelSpec
from .server import Sandbox
from .tasks import SandboxTask

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
