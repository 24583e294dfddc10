"""A Wiro-compatible emulator ("sandbox") for demos, tests and benchmarks.

It serves the ``/v1`` API of ``PixVerse/image-to-video-v5`` (Run, Task Detail/List/Cancel/
Kill, File Upload), a CDN for outputs and the task WebSocket, over real sockets, with
seeded, reproducible fault injection. It is an independent stand-in: it imports nothing
from the client side of batch-runner.

    async with Sandbox(SandboxConfig(run_seconds=(0, 0))) as sb:
        ...  # point a client at sb.base_url / sb.socket_url with sb.api_key, sb.api_secret
"""

from .auth import sign
from .config import FAULT_NAMES, FaultConfig, SandboxConfig
from .pricing import PRICES_USD
from .server import Sandbox
from .tasks import SandboxTask

__all__ = [
    "FAULT_NAMES",
    "PRICES_USD",
    "FaultConfig",
    "Sandbox",
    "SandboxConfig",
    "SandboxTask",
    "sign",
]
