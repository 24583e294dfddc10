"""Shared test setup: no test may see the developer's real Wiro credentials."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_wiro_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clear every WIRO_* variable so tests never reach a real account by accident."""
    import os

    for name in list(os.environ):
        if name.startswith("WIRO_"):
            monkeypatch.delenv(name, raising=False)
