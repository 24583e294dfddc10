"""``Sandbox``: start and stop the emulator on a real socket, and steer it while it runs.

Tests and benchmarks use it as an async context manager; the ``sandbox`` subcommand uses
``start``/``stop`` around a wait for SIGINT/SIGTERM.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from aiohttp import web

from .app import Api
from .config import FaultConfig, SandboxConfig
from .pricing import to_micro
from .tasks import SandboxTask


class Sandbox:
    """A Wiro-compatible API on loopback: ``base_url`` for HTTP, ``socket_url`` for push."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self._api = Api(self.config)
        self._runner: web.AppRunner | None = None
        self._host = "127.0.0.1"
        self._port = 0

    async def __aenter__(self) -> Sandbox:
        if self._runner is None:
            await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on ``host:port`` (port 0 picks a free one; see ``port``)."""
        if self._runner is not None:
            raise RuntimeError("the sandbox is already running")
        runner = web.AppRunner(self._api.build_app(), access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        self._host = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
        self._api.project.origin = f"http://{self._url_host}:{self._port}"

    async def stop(self) -> None:
        """Stop serving; pending task timers are cancelled (tasks freeze where they are)."""
        runner, self._runner = self._runner, None
        self._api.project.stop()
        if runner is not None:
            await runner.cleanup()

    @property
    def _url_host(self) -> str:
        return f"[{self._host}]" if ":" in self._host else self._host

    @property
    def running(self) -> bool:
        return self._runner is not None

    @property
    def port(self) -> int:
        return self._port

    @property
    def origin(self) -> str:
        """``http://HOST:PORT`` (downloads live under ``/cdn``, stats under ``/__sandbox``)."""
        return f"http://{self._url_host}:{self._port}"

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    @property
    def socket_url(self) -> str:
        return f"ws://{self._url_host}:{self._port}/socket/v1"

    @property
    def api_key(self) -> str:
        return self.config.api_key

    @property
    def api_secret(self) -> str | None:
        return self.config.api_secret

    @property
    def tasks(self) -> list[SandboxTask]:
        """The live task records, oldest first (``to_record()`` gives the JSON view)."""
        return list(self._api.project.tasks.values())

    def task_records(self) -> list[dict[str, Any]]:
        """What ``GET /__sandbox/tasks`` answers."""
        return [t.to_record() for t in self._api.project.tasks.values()]

    def stats(self, brief: bool = False) -> dict[str, Any]:
        """What ``GET /__sandbox/stats`` answers; ``brief`` (``?brief=1``) omits the
        per-input-set map, which is large after 100,000 tasks."""
        return self._api.stats(brief)

    def set_faults(self, faults: FaultConfig) -> None:
        """Swap the fault rates; tasks already created keep the fault they drew."""
        self._api.project.faults = faults

    def set_socket_mode(self, mode: str, refuse_status: int | None = None) -> None:
        """Make the push channel ``normal``, ``refuse`` (upgrades answered with HTTP
        ``refuse_status``, default the configured one) or ``silent`` (connections and
        subscriptions accepted, no frame sent); ValueError for an unknown mode."""
        self._api.hub.set_mode(mode, refuse_status)

    @property
    def socket_mode(self) -> str:
        return self._api.hub.mode

    def detail_requests(self, taskid: str | int) -> int:
        """How many ``/Task/Detail`` requests named this task (0 for an unknown id)."""
        task = self._api.project.tasks.get(int(taskid))
        return 0 if task is None else task.detail_requests

    def set_balance(self, usd: float) -> None:
        self._api.project.balance_micro = to_micro(usd)

    def set_concurrency_limit(self, limit: int | None) -> None:
        """A fixed limit, or None for the service's balance formula."""
        if limit is not None and limit < 1:
            raise ValueError("concurrency limit must be >= 1 or None")
        self._api.project.concurrency_limit = limit
