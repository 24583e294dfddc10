"""Configuration of the sandbox: the account it emulates and the faults it injects.

Both dataclasses are frozen so a running sandbox can swap a whole configuration atomically
(``Sandbox.set_faults``) without half-applied changes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from typing import Any

#: Fault names, in the order the command line documents them.
FAULT_NAMES: tuple[str, ...] = (
    "http_429",
    "http_500",
    "http_502",
    "drop_before_create",
    "drop_after_create",
    "generation_failure",
    "task_error",
    "system_cancel",
    "truncated_download",
    "slow_download",
    "unknown_status",
    "ws_drop",
    "ws_final_withheld",
)

ERROR_STYLES: tuple[str, ...] = ("http", "200")
PARAMETER_STYLES: tuple[str, ...] = ("mixed", "object", "string")
#: normal: push every frame; refuse: answer the upgrade with an HTTP error; silent: accept
#: connections and subscriptions, send nothing.
SOCKET_MODES: tuple[str, ...] = ("normal", "refuse", "silent")
#: How ``/Tool/Detail`` and ``/Tool/List`` give ``dynamicprice``: JSON text, or a list.
DYNAMICPRICE_STYLES: tuple[str, ...] = ("string", "list")


@dataclass(frozen=True)
class FaultConfig:
    """Probability (0..1) of each injected fault; every draw comes from the seeded RNG.

    HTTP faults (429/500/502) hit any ``/v1`` request before it is processed, so they never
    create a task. ``drop_*`` apply to ``/Run`` only. Task faults are drawn once per task at
    creation; download faults once per download request; ``ws_drop`` once per frame sent.
    ``ws_final_withheld`` is drawn once per task at creation: that task's final frames
    (``task_postprocess_end``, ``task_cancel``, ``task_error``...) never reach the socket,
    while ``/Task/Detail`` reports the end as usual.
    """

    http_429: float = 0.0
    http_500: float = 0.0
    http_502: float = 0.0
    drop_before_create: float = 0.0
    drop_after_create: float = 0.0
    generation_failure: float = 0.0
    task_error: float = 0.0
    system_cancel: float = 0.0
    truncated_download: float = 0.0
    slow_download: float = 0.0
    unknown_status: float = 0.0
    ws_drop: float = 0.0
    ws_final_withheld: float = 0.0
    slow_download_seconds: float = 5.0

    def __post_init__(self) -> None:
        for name in FAULT_NAMES:
            rate = getattr(self, name)
            if not isinstance(rate, int | float) or not 0.0 <= float(rate) <= 1.0:
                raise ValueError(f"fault rate {name}={rate!r} must be a number from 0 to 1")
        seconds = self.slow_download_seconds
        if not isinstance(seconds, int | float) or not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"slow_download_seconds={seconds!r} must be a number >= 0")

    @classmethod
    def uniform(cls, rate: float, **overrides: float) -> FaultConfig:
        """Every fault at the same ``rate`` (chaos runs), with optional per-fault overrides."""
        values: dict[str, float] = dict.fromkeys(FAULT_NAMES, rate)
        values.update(overrides)
        return cls(**values)

    @classmethod
    def parse(cls, specs: Iterable[str], base: FaultConfig | None = None) -> FaultConfig:
        """Build from ``["http_429=0.1", "task_error=0.05"]``; ``all=R`` sets every rate.

        Raises ValueError naming the bad item, and listing the known names when the name is
        unknown, so the CLI can print it as is.
        """
        values: dict[str, float] = {} if base is None else base.as_dict()
        for spec in specs:
            name, sep, raw = spec.partition("=")
            name = name.strip()
            if not sep or not name:
                raise ValueError(f"fault {spec!r} must look like NAME=RATE, e.g. http_429=0.1")
            known = (*FAULT_NAMES, "slow_download_seconds", "all")
            if name not in known:
                raise ValueError(f"unknown fault {name!r}; known faults: {', '.join(known)}")
            try:
                rate = float(raw)
            except ValueError:
                raise ValueError(f"fault {name}: {raw.strip()!r} is not a number") from None
            if name == "slow_download_seconds":
                if not math.isfinite(rate) or rate < 0:
                    raise ValueError(f"slow_download_seconds={raw.strip()} must be >= 0")
            elif not 0.0 <= rate <= 1.0:
                raise ValueError(f"fault {name}={raw.strip()} must be a rate from 0 to 1")
            if name == "all":
                values.update(dict.fromkeys(FAULT_NAMES, rate))
            else:
                values[name] = rate
        return cls(**values)

    def as_dict(self) -> dict[str, float]:
        return {f.name: float(getattr(self, f.name)) for f in fields(self)}

    def enabled(self) -> dict[str, float]:
        """Only the faults with a non-zero rate (for banners and logs)."""
        return {name: getattr(self, name) for name in FAULT_NAMES if getattr(self, name) > 0}


@dataclass(frozen=True)
class SandboxConfig:
    """The emulated project and service behaviour.

    ``concurrency_limit=None`` applies the service's formula (``max(1, floor(balance*0.10))``
    while the balance is at most $250, unlimited above). ``run_seconds=(0, 0)`` makes tasks
    near-instant while still passing through every status. ``error_style="200"`` answers
    every API error with HTTP 200 and ``result: false``, as one docs page claims.
    ``socket_mode`` (see SOCKET_MODES) with ``socket_refuse_status`` (the HTTP status of a
    refused upgrade) makes the push channel misbehave; ``dynamicprice_style`` picks which of
    the service's two forms of a tool's ``dynamicprice`` is served.
    """

    api_key: str = "sandbox-key"
    api_secret: str | None = "sandbox-secret"
    balance_usd: float = 1000.0
    concurrency_limit: int | None = None
    queue_seconds: float = 0.2
    run_seconds: tuple[float, float] = (1.0, 2.0)
    seed: int = 0
    faults: FaultConfig = field(default_factory=FaultConfig)
    error_style: str = "http"
    ws_replay: bool = False
    output_name: str | None = None
    max_tasks_list: int = 100
    reject_reused_nonces: bool = False
    parameters_style: str = "mixed"
    max_upload_bytes: int = 100 * 1024 * 1024
    socket_mode: str = "normal"
    socket_refuse_status: int = 404
    dynamicprice_style: str = "string"

    def __post_init__(self) -> None:
        if not self.api_key:
            raise ValueError("api_key must not be empty")
        if self.api_secret == "":
            raise ValueError("api_secret must be None (API-key-only project) or non-empty")
        if not math.isfinite(self.balance_usd) or self.balance_usd < 0:
            raise ValueError("balance_usd must be a number >= 0")
        if self.concurrency_limit is not None and self.concurrency_limit < 1:
            raise ValueError("concurrency_limit must be >= 1 or None")
        if not math.isfinite(self.queue_seconds) or self.queue_seconds < 0:
            raise ValueError("queue_seconds must be >= 0")
        low, high = self.run_seconds
        if not (math.isfinite(low) and math.isfinite(high)) or low < 0 or high < low:
            raise ValueError("run_seconds must be (low, high) with 0 <= low <= high")
        if self.error_style not in ERROR_STYLES:
            raise ValueError(f"error_style must be one of {', '.join(ERROR_STYLES)}")
        if self.parameters_style not in PARAMETER_STYLES:
            raise ValueError(f"parameters_style must be one of {', '.join(PARAMETER_STYLES)}")
        if self.max_tasks_list < 1:
            raise ValueError("max_tasks_list must be >= 1")
        check_socket_mode(self.socket_mode, self.socket_refuse_status)
        if self.dynamicprice_style not in DYNAMICPRICE_STYLES:
            raise ValueError(f"dynamicprice_style must be one of {', '.join(DYNAMICPRICE_STYLES)}")

    def but(self, **changes: Any) -> SandboxConfig:
        """A copy with some fields changed (tests build variants this way)."""
        return replace(self, **changes)


def check_socket_mode(mode: str, refuse_status: int) -> None:
    """ValueError unless ``mode`` is known and ``refuse_status`` an HTTP error status."""
    if mode not in SOCKET_MODES:
        raise ValueError(f"socket_mode must be one of {', '.join(SOCKET_MODES)}")
    if not isinstance(refuse_status, int) or not 400 <= refuse_status <= 599:
        raise ValueError(f"socket_refuse_status={refuse_status!r} must be from 400 to 599")
