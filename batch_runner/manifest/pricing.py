"""Cost estimates for PixVerse/image-to-video-v5 jobs, by quality and duration.

These are **estimates**: PixVerse's own price list in credits (at $1 = 100 credits), as
restated in the project's Wiro API reference (wiro-api.md). Wiro bills what the task reports in its
``totalcost``, which may differ; failed tasks are not billed. The figures only serve to show
a batch's rough price before it runs and to enforce ``--max-cost`` conservatively.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

#: USD per task keyed by (quality, duration), from PixVerse's price list (estimates).
PRICES_USD: dict[tuple[str, str], float] = {
    ("360p", "5"): 0.45,
    ("360p", "8"): 0.90,
    ("540p", "5"): 0.45,
    ("540p", "8"): 0.90,
    ("720p", "5"): 0.60,
    ("720p", "8"): 1.20,
    ("1080p", "5"): 1.20,
    ("1080p", "8"): 2.40,
}

#: What the API uses when a job leaves quality or duration unset.
DEFAULT_QUALITY = "540p"
DEFAULT_DURATION = "5"


class _HasInputs(Protocol):
    @property
    def inputs(self) -> Mapping[str, str]: ...


def quality_and_duration(inputs: Mapping[str, str]) -> tuple[str, str]:
    """The (quality, duration) a job will run at, with the API's defaults filled in."""
    quality = inputs.get("quality") or DEFAULT_QUALITY
    duration = inputs.get("duration") or DEFAULT_DURATION
    return quality, duration


def estimate_job_cost(inputs: Mapping[str, str]) -> float | None:
    """The estimated USD price of one job, or None when the price list has no entry."""
    return PRICES_USD.get(quality_and_duration(inputs))


def estimate_total(jobs: Iterable[_HasInputs]) -> float:
    """The estimated USD price of all jobs; jobs without a known price count as 0."""
    total = 0.0
    for job in jobs:
        cost = estimate_job_cost(job.inputs)
        if cost is not None:
            total += cost
    return round(total, 2)
