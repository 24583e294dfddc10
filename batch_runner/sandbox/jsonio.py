"""JSON in and out: orjson (several times faster than ``json``), ``json`` where orjson refuses.

orjson rejects lone surrogates (a JSON body may carry ``"\\ud800"``, which ``json.loads``
accepts), invalid UTF-8 and non-string keys; the standard library then does the job as it
did before, so every answer is still sent and every body read the same way. Both write
compact JSON; orjson writes non-ASCII as UTF-8.
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


def dumps_sorted(data: Any) -> str:
    """Canonical text: keys sorted, compact."""
    try:
        return orjson.dumps(data, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        return json.dumps(data, sort_keys=True, separators=(",", ":"))


def loads(raw: bytes) -> Any:
    """Parse a request body; ValueError when it is not JSON."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw.decode("utf-8", errors="replace"))
