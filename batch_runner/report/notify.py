"""``--notify-url``: POST a JSON summary of the run when it ends (mail bridges, chat webhooks).

A failed notification is reported but never changes the run's exit code. The URL may carry
a webhook token, so messages name only its host.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from ..engine.result import RunResult
from ..errors import redact

#: Failures listed in the payload; the rest are counted.
MAX_FAILURES = 100


def summary_payload(result: RunResult | None, *, exit_code: int, manifest: str) -> dict[str, Any]:
    """The JSON body: exit code, counts, spend, failures. No credentials, no task tokens."""
    body: dict[str, Any] = {
        "tool": "batch-runner",
        "host": socket.gethostname(),
        "manifest": manifest,
        "exit_code": exit_code,
    }
    if result is None or result.interrupted:
        body["interrupted"] = True
        return body
    body.update(
        out_dir=str(result.out_dir),
        total=result.total,
        counts={k: v for k, v in result.counts.items() if v},
        spent_usd=round(result.spent, 6),
        wall_seconds=round(result.wall_seconds, 3),
        stop_reason=result.stop_reason,
        failures=[{"job": j, "error": e} for j, e in result.failures[:MAX_FAILURES]],
        failures_total=len(result.failures),
    )
    return body


async def notify(
    url: str,
    payload: dict[str, Any],
    *,
    timeout: float = 15.0,
    warn: Callable[[str], None] | None = None,
) -> bool:
    """POST ``payload``; True on a 2xx answer. Problems go to ``warn`` (default: stderr),
    never raise."""
    host = urlsplit(url).hostname or "the notify URL"
    say = warn or (lambda text: print(f"warning: {text}", file=sys.stderr))
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.post(url, json=payload) as resp,
        ):
            if 200 <= resp.status < 300:
                return True
            say(f"notification to {host} answered HTTP {resp.status}")
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
        say(redact(f"notification to {host} failed ({type(exc).__name__})"))
    return False
