"""Shared test setup: no test may see the developer's real Wiro credentials or write to the
developer's real user cache; the ``batch`` fixture for tests that drive the real CLI against a
sandbox."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from clihelp import FAST, Batch, MakeBatch, cli_env, write_manifest

from batch_runner.sandbox import Sandbox, SandboxConfig


@pytest.fixture(autouse=True)
def _no_wiro_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Clear every WIRO_* variable so tests never reach a real account by accident, and give
    each test its own empty model-definition cache (BATCH_RUNNER_CACHE_DIR)."""
    import os

    for name in list(os.environ):
        if name.startswith("WIRO_"):
            monkeypatch.delenv(name, raising=False)
    cache: Path = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("BATCH_RUNNER_CACHE_DIR", str(cache))


@pytest.fixture
async def batch(tmp_path: Path) -> AsyncIterator[MakeBatch]:
    """A factory for one :class:`clihelp.Batch` per test::

        b = await batch(jobs=4, config=FAST.but(concurrency_limit=2))
        done = await b.run("--concurrency", "6")
        assert done.code == 0, done.err
        assert b.outputs_match_service() == 4

    It writes ``tmp_path / "m.yaml"`` with ``jobs`` jobs (``defaults`` and ``extra`` go to
    ``write_manifest``), starts ``Sandbox(config)`` in the test's own event loop, and builds
    the CLI environment (``env``: extra variables). The output folder is ``tmp_path / "out"``.
    At teardown it kills any process ``b.start()`` left running, then closes the sandbox.
    """
    async with contextlib.AsyncExitStack() as stack:
        made: list[Batch] = []

        async def make(
            *,
            jobs: int = 6,
            config: SandboxConfig = FAST,
            env: dict[str, str] | None = None,
            defaults: dict[str, Any] | None = None,
            extra: dict[str, Any] | None = None,
        ) -> Batch:
            assert not made, "one batch per test"
            manifest = write_manifest(tmp_path / "m.yaml", jobs, defaults=defaults, extra=extra)
            sb = await stack.enter_async_context(Sandbox(config))
            made.append(Batch(sb, manifest, tmp_path / "out", cli_env(sb, **(env or {}))))
            stack.push_async_callback(made[0].kill_leftovers)
            return made[0]

        yield make
