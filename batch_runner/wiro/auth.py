"""Authentication: the API key, an optional secret, and a fresh signed nonce per request.

Two project modes exist, fixed when the project is created: API key only (``x-api-key``), and
signature (``x-api-key``, ``x-nonce``, ``x-signature`` = hex HMAC-SHA256 keyed by the API key
over secret + nonce). Many requests per second need distinct nonces: :class:`NonceSource`
hands out strictly increasing microsecond values. Credentials are registered for redaction
the moment they exist, so no message can carry them.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import UsageError, register_secret


@dataclass(frozen=True)
class Credentials:
    """An API key and optional secret. ``repr`` never shows either."""

    api_key: str
    api_secret: str | None = None

    def __post_init__(self) -> None:
        if not self.api_key:
            raise UsageError(
                "No API key: set WIRO_API_KEY (and WIRO_API_SECRET for a signature project), "
                "or use --sandbox."
            )
        register_secret(self.api_key)
        register_secret(self.api_secret)

    def __repr__(self) -> str:
        mode = "signature" if self.api_secret else "api-key-only"
        return f"Credentials(mode={mode!r})"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Credentials:
        env = os.environ if environ is None else environ
        return cls(
            env.get("WIRO_API_KEY", "").strip(), env.get("WIRO_API_SECRET", "").strip() or None
        )


class NonceSource:
    """Strictly increasing microsecond nonces: distinct even at thousands of requests/s."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def next(self) -> str:
        with self._lock:
            now = time.time_ns() // 1000
            self._last = max(now, self._last + 1)
            return str(self._last)


def sign(api_key: str, api_secret: str, nonce: str) -> str:
    """``hex(HMAC-SHA256(key=api_key, msg=api_secret + nonce))``, lowercase."""
    return hmac.new(api_key.encode(), (api_secret + nonce).encode(), hashlib.sha256).hexdigest()
