"""What a task costs: a tool's ``dynamicprice`` tiers, else elapsed seconds x ``cps``.

A tier applies when every one of its ``inputs`` equals the task's resolved input (or, for
``"QUANTITY:n"``, when that file input received n files); the most specific matching tier
wins, an empty ``inputs`` being the flat price. Money is kept in integer micro-dollars so
that thousands of charges add up exactly. The charge is computed when a task succeeds; at
``/Run`` the same rules give the amount reserved for the code-97 check (with
``approximatelycost`` standing in for time-based prices, whose time is not known yet).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

MICRO = 1_000_000

#: Price methods computed from what the sandbox knows; any other method (cpt, cp-pixel,
#: cp-audiosecondslength, cp-readoutput, cp-realtimeturn) is charged once per run.
PER_RUN, PER_OUTPUT, PER_SECOND = "cpr", "cpo", "cps"
PER_CHARACTER, PER_VIDEO_SECOND = "cp-promptlength", "cp-outputVideoLength"


def to_micro(usd: float) -> int:
    return round(usd * MICRO)


def to_usd(micro: int) -> float:
    return round(micro / MICRO, 6)


def concurrency_limit_for(balance_micro: int) -> int | None:
    """The service's formula: ``max(1, floor(balance * 0.10))`` up to $250, else no limit."""
    if balance_micro > 250 * MICRO:
        return None
    return max(1, balance_micro // (10 * MICRO))


@dataclass(frozen=True)
class PriceTier:
    """One entry of ``dynamicprice``."""

    inputs: tuple[tuple[str, str], ...]
    price: float
    method: str

    def matches(self, parameters: Mapping[str, str], file_counts: Mapping[str, int]) -> bool:
        for name, wanted in self.inputs:
            if wanted.startswith("QUANTITY:"):
                if str(file_counts.get(name, 0)) != wanted.partition(":")[2].strip():
                    return False
            elif parameters.get(name) != wanted:
                return False
        return True


def parse_tiers(dynamicprice: object) -> tuple[PriceTier, ...]:
    """Tiers from ``dynamicprice`` as the service gives it: JSON text, a list, or null."""
    if dynamicprice is None or dynamicprice == "":
        return ()
    data = json.loads(dynamicprice) if isinstance(dynamicprice, str) else dynamicprice
    if not isinstance(data, list):
        raise ValueError("dynamicprice must be a list of tiers")
    tiers = []
    for entry in data:
        if not isinstance(entry, dict) or not isinstance(entry.get("inputs", {}), dict):
            raise ValueError(f"dynamicprice tier is not an object with inputs: {entry!r}")
        price = float(entry.get("price", 0))
        if not math.isfinite(price) or price < 0:
            raise ValueError(f"dynamicprice tier has a bad price: {entry!r}")
        inputs = tuple(sorted((str(k), str(v)) for k, v in entry.get("inputs", {}).items()))
        tiers.append(PriceTier(inputs, price, str(entry.get("priceMethod") or PER_RUN)))
    return tuple(tiers)


@dataclass(frozen=True)
class Pricing:
    """A tool's prices. ``seconds_input`` names the input holding the output video's length
    (for ``cp-outputVideoLength``: the sandbox's video is as long as was asked)."""

    tiers: tuple[PriceTier, ...]
    cps: float
    approximate: float
    seconds_input: str | None = None
    #: The inputs the tiers look at, and the tier chosen for each combination of their
    #: values (a few dozen), so that matching is done once per combination.
    _names: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _chosen: dict[tuple[object, ...], PriceTier | None] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        names = sorted({name for tier in self.tiers for name, _ in tier.inputs})
        object.__setattr__(self, "_names", tuple(names))

    def tier_for(
        self, parameters: Mapping[str, str], file_counts: Mapping[str, int]
    ) -> PriceTier | None:
        key = tuple((parameters.get(n), file_counts.get(n, 0)) for n in self._names)
        if key in self._chosen:
            return self._chosen[key]
        best: PriceTier | None = None
        for tier in self.tiers:
            if tier.matches(parameters, file_counts) and (
                best is None or len(tier.inputs) > len(best.inputs)
            ):
                best = tier
        if len(self._chosen) < 4096:
            self._chosen[key] = best
        return best

    def quote(
        self, parameters: Mapping[str, str], file_counts: Mapping[str, int], outputs: int
    ) -> int:
        """Micro-dollars to reserve at ``/Run``."""
        return self._cost(parameters, file_counts, outputs, None)

    def charge(
        self,
        parameters: Mapping[str, str],
        file_counts: Mapping[str, int],
        outputs: int,
        elapsed: float,
    ) -> int:
        """Micro-dollars a succeeded task costs."""
        return self._cost(parameters, file_counts, outputs, elapsed)

    def _cost(
        self,
        parameters: Mapping[str, str],
        file_counts: Mapping[str, int],
        outputs: int,
        elapsed: float | None,
    ) -> int:
        tier = self.tier_for(parameters, file_counts)
        if tier is None or tier.method == PER_SECOND:
            rate = self.cps if tier is None else tier.price
            return to_micro(self.approximate if elapsed is None else rate * elapsed)
        quantity = 1.0
        if tier.method == PER_OUTPUT:
            quantity = max(outputs, 1)  # no output at all is charged once (Wiro's docs)
        elif tier.method == PER_CHARACTER:
            quantity = len(parameters.get("prompt", ""))
        elif tier.method == PER_VIDEO_SECOND:
            quantity = _seconds(parameters.get(self.seconds_input or "", ""))
        return to_micro(tier.price * quantity)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        return 1.0
    return value if math.isfinite(value) and value > 0 else 1.0
