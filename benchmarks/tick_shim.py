"""The batch-runner CLI with ``Runner._tick`` limited to 4 calls a second. Benchmarks only.

    python benchmarks/tick_shim.py run MANIFEST --out DIR ...   (same arguments as the CLI)

Why: engines before commit 7e87a12 called ``Runner._tick()`` after every job, and ``_tick``
summed ``state.jobs`` (``state.total_cost``): O(jobs) per job, O(jobs^2) per run; at 100,000
jobs that was ~95 % of the main thread, about 3 jobs/s, a run of hours. ``bench_scale.py``
falls back to this shim only when the stock CLI is projected to exceed its time budget, to
finish the folder so that the ledger size and the resume time of a finished 100,000-job
folder can still be measured; the table says when it was used. Nothing recorded differs
(the shim only skips redundant recounts of the progress display); with an engine that
refreshes progress on a timer it changes nothing.
"""

from __future__ import annotations

import sys
import time

import batch_runner.engine.runner as runner_module
from batch_runner.cli import main

MIN_INTERVAL = 0.25


def _limit(tick):  # type: ignore[no-untyped-def]
    def limited(self) -> None:  # type: ignore[no-untyped-def]
        now = time.monotonic()
        if now - getattr(self, "_shim_last_tick", 0.0) < MIN_INTERVAL:
            return
        self._shim_last_tick = now
        tick(self)

    return limited


if hasattr(runner_module.Runner, "_tick"):
    runner_module.Runner._tick = _limit(runner_module.Runner._tick)  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(main())
