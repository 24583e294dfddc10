"""Shared test setup: no test may see the developer's real Wiro credentials or write to the
developer's real user cache."""

from __future__ import annotations

from pathlib import Path

import pytest


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
