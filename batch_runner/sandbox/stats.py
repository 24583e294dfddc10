"""Counters the sandbox keeps so tests and benchmarks can check what a client really did.

Only plain integer counters live here; figures derived from the task table (tasks per
status, duplicate input sets, in-flight peak) are computed by :class:`~.state.Project`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

API_ENDPOINTS = frozenset(
    {
        "Task/Detail",
        "Task/List",
        "Task/Cancel",
        "Task/Kill",
        "File/Upload",
        "Tool/Detail",
        "Tool/List",
    }
)


def endpoint_of(path: str) -> str:
    """A stable name for the endpoint a path belongs to (``Run``, ``Task/Detail``, ``cdn``...)."""
    if path.startswith("/v1/"):
        parts = path[4:].split("/")
        if parts[0] == "Run":
            return "Run"
        name = "/".join(parts[:2])
        return name if name in API_ENDPOINTS else "unknown"
    for prefix, name in (
        ("/cdn/", "cdn"),
        ("/files/", "files"),
        ("/socket/", "socket"),
        ("/__sandbox/", "sandbox"),
    ):
        if path.startswith(prefix):
            return name
    return "unknown"


@dataclass
class Counters:
    """Monotonic counters; ``snapshot`` turns them into plain JSON-ready dicts.

    Socket figures: ``ws_upgrades`` counts upgrade attempts, of which ``ws_connections``
    were accepted and ``ws_refused`` answered with an HTTP error (``socket_mode="refuse"``);
    ``ws_frames_sent`` counts frames written, ``ws_frames_withheld`` final frames kept back
    by the ``ws_final_withheld`` fault and ``ws_frames_silenced`` frames not sent because
    ``socket_mode="silent"`` (both per subscriber).
    """

    requests: Counter[str] = field(default_factory=Counter)
    responses: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    faults: Counter[str] = field(default_factory=Counter)
    nonces_reused: int = 0
    nonces_rejected: int = 0
    bytes_served: int = 0
    downloads_completed: int = 0
    ws_upgrades: int = 0
    ws_connections: int = 0
    ws_refused: int = 0
    ws_frames_sent: int = 0
    ws_frames_withheld: int = 0
    ws_frames_silenced: int = 0
    ws_subscriptions: int = 0
    ws_unknown_tokens: int = 0
    uploads: int = 0

    def answered(self, endpoint: str, status: int | str) -> None:
        self.responses[endpoint][str(status)] += 1

    def add_bytes(self, count: int) -> None:
        self.bytes_served += count

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "requests_total": sum(self.requests.values()),
            "responses": {name: dict(c) for name, c in self.responses.items()},
            "faults_injected": dict(self.faults),
            "nonces_reused": self.nonces_reused,
            "nonces_rejected": self.nonces_rejected,
            "bytes_served": self.bytes_served,
            "downloads_completed": self.downloads_completed,
            "ws_upgrades": self.ws_upgrades,
            "ws_connections": self.ws_connections,
            "ws_refused": self.ws_refused,
            "ws_frames_sent": self.ws_frames_sent,
            "ws_frames_withheld": self.ws_frames_withheld,
            "ws_frames_silenced": self.ws_frames_silenced,
            "ws_subscriptions": self.ws_subscriptions,
            "ws_unknown_tokens": self.ws_unknown_tokens,
            "uploads": self.uploads,
        }
