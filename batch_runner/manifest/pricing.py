"""Cost estimates of a manifest's jobs, from their models' definitions.

Each job's estimate is worked out when the manifest is loaded (``Job.estimate``, from the
model's ``dynamicprice`` tiers, else its typical cost; see
:mod:`batch_runner.models.prices`). These are **estimates**: Wiro bills what the task reports
in its ``totalcost``, which the ledger records; failed tasks are not billed. The figures show
a batch's rough price before it runs and keep ``--max-cost`` conservative.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol


class _Priced(Protocol):
    @property
    def estimate(self) -> float | None: ...


def estimate_job_cost(job: _Priced) -> float | None:
    """The estimated USD price of one job, or None when its model's price is not known."""
    return job.estimate


def estimate_total(jobs: Iterable[_Priced]) -> float:
    """The estimated USD price of all jobs; jobs without a known price count as 0."""
    return round(sum(job.estimate or 0.0 for job in jobs), 2)


def unpriced(jobs: Iterable[_Priced]) -> int:
    """How many jobs have no known price."""
    return sum(1 for job in jobs if job.estimate is None)
