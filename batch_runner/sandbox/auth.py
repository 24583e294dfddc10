"""Project authentication, with the service's exact error texts.

A project is either API-key only (``x-api-key``) or signed (``x-api-key``, ``x-nonce``,
``x-signature = hex(HMAC-SHA256(key=API_KEY, msg=API_SECRET + NONCE))``). Reused nonces are
counted, since the docs promise replay protection but clients often reuse second-resolution
nonces; rejecting them is opt-in.
"""

from __future__ import annotations

import hmac
from collections import deque
from collections.abc import Mapping

NOT_FOUND = "Project authorization is not founded."
SIGNATURE_REQUIRED = (
    "Project requires signature authentication. x-signature and x-nonce headers are required."
)
NOT_VALID = "Project authorization is not valid."

#: How many nonces are remembered for reuse detection.
NONCE_MEMORY = 1_000_000


def sign(api_key: str, api_secret: str, nonce: str) -> str:
    """The signature a client must send for ``nonce``."""
    return hmac.digest(api_key.encode(), (api_secret + nonce).encode(), "sha256").hex()


class Authenticator:
    """Checks request headers; remembers nonces seen with a valid signature."""

    def __init__(self, api_key: str, api_secret: str | None, reject_reused: bool) -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        self.reject_reused = reject_reused
        self.reused = 0
        self.rejected = 0
        self._seen: set[str] = set()
        self._order: deque[str] = deque()

    def check(self, headers: Mapping[str, str]) -> str | None:
        """None when authorised, else the error message to answer with (HTTP 401)."""
        key = headers.get("x-api-key", "")
        if not key or not hmac.compare_digest(key.encode(), self.api_key.encode()):
            return NOT_FOUND
        if self.api_secret is None:
            return None
        nonce = headers.get("x-nonce", "")
        signature = headers.get("x-signature", "")
        if not nonce or not signature:
            return SIGNATURE_REQUIRED
        expected = sign(self.api_key, self.api_secret, nonce)
        if not hmac.compare_digest(signature.encode(), expected.encode()):
            return NOT_VALID
        if nonce in self._seen:
            self.reused += 1
            if self.reject_reused:
                self.rejected += 1
                return NOT_VALID
            return None
        self._seen.add(nonce)
        self._order.append(nonce)
        if len(self._order) > NONCE_MEMORY:
            self._seen.discard(self._order.popleft())
        return None
