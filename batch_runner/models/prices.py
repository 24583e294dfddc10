"""Price estimates from a model definition: ``dynamicprice`` tiers, else the typical cost.

``dynamicprice`` is JSON text (or, from some clients, a list) of tiers ``{"inputs": {...},
"price", "priceMethod"}``. A tier applies when each of its inputs equals the job's value
(the model's default when the job leaves it unset), or for ``"QUANTITY:n"`` when that file
input gets n files; the most specific matching tier wins, empty ``inputs`` being a flat price.
Methods computed here: ``cpr`` (per run), ``cpo`` (per output), ``cp-promptlength``,
``cp-outputVideoLength`` and ``cp-pixel`` when the inputs say the length or size. Anything
else (per second, per token...) cannot be known before the task runs: the model's
``approximatelycost`` stands in, else the price is unknown.

These are **estimates** for ``validate``, ``--dry-run`` and ``--max-cost``; what a task costs
is its ``totalcost``, which the ledger records.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .items import DefinitionProblem, InputItem, api_str

MAX_TIERS = 2000
#: Inputs that, when present, say how many outputs a task makes (``cpo``).
COUNT_INPUTS = ("samples", "numberOfImages", "numImages", "num_images", "numOutputs",
                "num_outputs", "numberOfOutputs", "outputCount", "batchSize", "n")  # fmt: skip
#: Inputs that say the output's length in seconds (``cp-outputVideoLength``).
SECONDS_INPUTS = ("duration", "durationSeconds", "seconds", "videoLength", "generationLength",
                  "length")  # fmt: skip


@dataclass(frozen=True, slots=True)
class PriceTier:
    """One entry of ``dynamicprice``."""

    #: (input, value) pairs in the record's order
    inputs: tuple[tuple[str, str], ...]
    price: float
    method: str

    def matches(self, values: Mapping[str, str], file_counts: Mapping[str, int]) -> bool:
        for name, wanted in self.inputs:
            if wanted.startswith("QUANTITY:"):
                if str(file_counts.get(name, 0)) != wanted.partition(":")[2].strip():
                    return False
            elif values.get(name, "") != wanted:
                return False
        return True


@dataclass(frozen=True, slots=True)
class Estimate:
    """A job's estimated price: ``usd`` None when unknown; ``basis`` ``tier``,
    ``typical`` (the model's approximatelycost) or ``unknown``."""

    usd: float | None
    basis: str


UNKNOWN = Estimate(None, "unknown")


def parse_tiers(raw: Any, warnings: list[str]) -> tuple[PriceTier, ...]:
    """Tiers from ``dynamicprice`` (JSON text, a list, or null); a malformed value is a
    warning and no tiers, never an error: prices only feed estimates."""
    if raw is None or raw == "" or raw == []:
        return ()
    data = raw
    if isinstance(raw, str):
        try:
            data = json.loads(raw)
        except ValueError:
            warnings.append("dynamicprice is not valid JSON; prices are estimated without it")
            return ()
    if not isinstance(data, list):
        warnings.append("dynamicprice is not a list of tiers; prices are estimated without it")
        return ()
    tiers: list[PriceTier] = []
    for number, entry in enumerate(data[:MAX_TIERS], 1):
        try:
            tiers.append(_tier(entry))
        except (DefinitionProblem, TypeError, ValueError) as exc:
            warnings.append(f"dynamicprice tier #{number} is ignored: {exc}")
    return tuple(tiers)


def _tier(entry: Any) -> PriceTier:
    if not isinstance(entry, Mapping):
        raise DefinitionProblem("not an object")
    inputs = entry.get("inputs") or {}
    if not isinstance(inputs, Mapping):
        raise DefinitionProblem("its inputs are not an object")
    price = float(api_str(entry.get("price")) or "nan")
    if not math.isfinite(price) or price < 0:
        raise DefinitionProblem(f"bad price {entry.get('price')!r}"[:80])
    method = api_str(entry.get("priceMethod")) or "cpr"
    pairs = tuple((str(k)[:100], api_str(v)[:200]) for k, v in inputs.items())
    return PriceTier(pairs, price, method[:40])


def as_number(text: str | None) -> float | None:
    try:
        value = float(text or "")
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


class PriceBook:
    """A model's prices, with the choice of tier remembered per combination of the inputs
    the tiers look at (a few dozen), so 100,000 jobs cost a dict lookup each."""

    def __init__(
        self,
        tiers: Sequence[PriceTier],
        typical: float | None,
        items: Sequence[InputItem],
    ) -> None:
        self.tiers = tuple(tiers)
        self.typical = typical if typical is not None and typical > 0 else None
        self.defaults = {i.name: i.default or "" for i in items if not i.is_file}
        self.names = tuple(sorted({name for tier in self.tiers for name, _ in tier.inputs}))
        self._chosen: dict[tuple[Any, ...], PriceTier | None] = {}
        methods = {tier.method for tier in self.tiers}
        #: Every input an estimate can depend on, when that is a short list (a prompt's
        #: length is not): estimates are then remembered per combination of their values.
        self._relevant: tuple[str, ...] | None = None
        if "cp-promptlength" not in methods:
            names = [*self.names]
            names += COUNT_INPUTS if "cpo" in methods else ()
            names += SECONDS_INPUTS if "cp-outputVideoLength" in methods else ()
            names += ("width", "height") if "cp-pixel" in methods else ()
            self._relevant = tuple(dict.fromkeys(names))
        self._estimates: dict[tuple[Any, ...], Estimate] = {}

    def ignores(self, names: Iterable[str]) -> bool:
        """True when the estimate cannot depend on the inputs ``names``: jobs that differ
        only in them (the prompts of a batch) share one price, looked up once."""
        if not self.tiers:
            return True
        return self._relevant is not None and set(self._relevant).isdisjoint(names)

    @property
    def axes(self) -> tuple[str, ...]:
        """The inputs the tiers price by (not file counts), in the record's order: what a
        batch's mix of prices is made of (PixVerse: quality, duration)."""
        names: dict[str, None] = {}
        for tier in self.tiers:
            for name, value in tier.inputs:
                if not value.startswith("QUANTITY:"):
                    names.setdefault(name)
        return tuple(names)

    @property
    def fallback(self) -> Estimate:
        return Estimate(self.typical, "typical") if self.typical is not None else UNKNOWN

    def values(self, inputs: Mapping[str, str]) -> dict[str, str]:
        """The job's values with the model's defaults for what it leaves unset."""
        return {**self.defaults, **{k: v for k, v in inputs.items() if v != ""}}

    def tier_for(
        self, values: Mapping[str, str], file_counts: Mapping[str, int]
    ) -> PriceTier | None:
        key = tuple((values.get(n), file_counts.get(n, 0)) for n in self.names)
        if key in self._chosen:
            return self._chosen[key]
        best: PriceTier | None = None
        for tier in self.tiers:
            if tier.matches(values, file_counts) and (
                best is None or len(tier.inputs) > len(best.inputs)
            ):
                best = tier
        if len(self._chosen) < 4096:
            self._chosen[key] = best
        return best

    def estimate(
        self, inputs: Mapping[str, str], file_counts: Mapping[str, int] | None = None
    ) -> Estimate:
        """The estimated price of one task with these inputs (the API's strings)."""
        if not self.tiers:
            return self.fallback
        if self._relevant is None:
            return self._estimate(inputs, file_counts)
        key = (
            tuple(map(inputs.get, self._relevant)),
            tuple(map(file_counts.get, self.names)) if file_counts else (),
        )
        found = self._estimates.get(key)
        if found is None:
            found = self._estimate(inputs, file_counts)
            if len(self._estimates) < 4096:
                self._estimates[key] = found
        return found

    def _estimate(
        self, inputs: Mapping[str, str], file_counts: Mapping[str, int] | None
    ) -> Estimate:
        values = self.values(inputs)
        tier = self.tier_for(values, file_counts or {})
        if tier is None:
            return self.fallback
        quantity = self._quantity(tier.method, values)
        if quantity is None:
            return self.fallback
        return Estimate(round(tier.price * quantity, 6), "tier")

    @staticmethod
    def _quantity(method: str, values: Mapping[str, str]) -> float | None:
        if method == "cpr":
            return 1.0
        if method == "cpo":
            for name in COUNT_INPUTS:
                count = as_number(values.get(name))
                if count is not None and count >= 1:
                    return float(int(count))
            return 1.0
        if method == "cp-promptlength":
            return float(len(values.get("prompt", "")))
        if method == "cp-outputVideoLength":
            for name in SECONDS_INPUTS:
                seconds = as_number(values.get(name))
                if seconds:
                    return seconds
            return None
        if method == "cp-pixel":
            width, height = as_number(values.get("width")), as_number(values.get("height"))
            return width * height if width and height else None
        return None  # per second, per token, per audio second...: known only afterwards
