"""JSON out: orjson (several times faster than ``json``), ``json`` for what orjson refuses.

orjson rejects lone surrogates (a JSON body may carry ``"\\ud800"``, which ``json.loads``
accepts) and non-string keys; the standard encoder escapes and converts those, so the
answer is still sent. Both write compact JSON; orjson writes non-ASCII as UTF-8.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def dumps(data: Any) -> bytes:
    try:
        return orjson.dumps(data)
    except TypeError:
        return json.dumps(data, separators=(",", ":")).encode()


def dumps_text(data: Any) -> str:
    """The same, as text (WebSocket frames)."""
    return dumps(data).decode()
