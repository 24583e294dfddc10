"""What a person reads at the end of a run, and before one (``--dry-run``)."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import TextIO

from ..engine.plan import plan_run
from ..engine.result import RunResult
from ..errors import printable
from ..ledger.state import LedgerState
from ..ledger.store import has_ledger, read_ledger
from ..manifest.loader import Manifest
from ..manifest.pricing import PRICES_USD, estimate_job_cost, quality_and_duration

#: Failures listed by name in the summary; the rest are counted.
MAX_LISTED = 20
_QUALITY_ORDER = {quality: n for n, (quality, _d) in enumerate(PRICES_USD)}


def print_summary(result: RunResult, *, quiet: bool = False, out: TextIO | None = None) -> None:
    stream = out or sys.stdout
    counts = {k: v for k, v in result.counts.items() if v}
    parts = ", ".join(f"{v} {k}" for k, v in counts.items()) or "nothing to do"
    lines = [
        f"{result.total} jobs: {parts}",
        f"wall time {result.wall_seconds:.1f} s; "
        f"spent ${result.spent:.2f} (as reported by the service)",
    ]
    if result.failures:
        lines.append(f"{len(result.failures)} failed or cancelled:")
        for job_id, reason in result.failures[:MAX_LISTED]:
            lines.append(f"  {job_id}: {reason}")
        if len(result.failures) > MAX_LISTED:
            lines.append(
                f"  ... and {len(result.failures) - MAX_LISTED} more (batch-runner status)"
            )
    if result.stop_reason:
        lines.append(f"stopped early: {result.stop_reason}")
    lines.append(f"outputs: {result.out_dir}")
    lines += _publish_lines(result)
    if result.exit_code == 4:
        lines.append("work is left: re-run the same command to continue.")
    elif result.exit_code == 1:
        lines.append("re-run with --retry-failed to give the failed jobs a new round.")
    stream.write(printable("\n".join(lines)) + "\n")
    stream.flush()


def _publish_lines(result: RunResult) -> list[str]:
    """What publishing did, for ``--publish`` runs."""
    fig = result.published
    if fig is None:
        return []
    mib = result.uploaded_bytes / 2**20
    line = f"published: {fig.published_jobs} jobs in {fig.target} ({result.uploaded} uploaded"
    line += f" now, {mib:.1f} MiB; {result.found_published} already there)"
    lines = [line]
    if fig.unpublished_jobs:
        why = f" ({result.publish_error})" if result.publish_error else ""
        lines.append(f"not published: {fig.unpublished_jobs} succeeded jobs{why}")
    return lines


def print_dry_run(manifest: Manifest, out_dir: Path, *, retry_failed: bool) -> None:
    """What ``run`` would do, from the manifest and the ledger; sends nothing, writes nothing."""
    state = read_ledger(out_dir) if has_ledger(out_dir) else LedgerState()
    plan = plan_run(manifest.jobs, state, retry_failed=retry_failed)
    jobs = {job.id: job for job in manifest.jobs}
    estimate = sum(estimate_job_cost(jobs[j].inputs) or 0.0 for j in plan.submit if j in jobs)
    resumed = len(plan.track) + len(plan.reconcile) + len(plan.download)
    print(f"dry run of {manifest.path} into {out_dir} (nothing is sent)")
    print(f"  would submit:   {len(plan.submit)} jobs (estimated ${estimate:.2f})")
    print(
        f"  would resume:   {resumed} jobs ({len(plan.track)} tracked by task id, "
        f"{len(plan.reconcile)} reconciled, {len(plan.download)} to download)"
    )
    print(
        f"  would skip:     {len(plan.verify)} succeeded, {len(plan.skip)} failed earlier"
        + ("" if retry_failed or not plan.skip else " (use --retry-failed to re-run them)")
    )
    if plan.edited or plan.edited_in_flight:
        print(f"  edited since their last run: {len(plan.edited) + len(plan.edited_in_flight)}")
    for job_id in plan.submit[:10]:
        job = jobs[job_id]
        quality, duration = job.inputs.get("quality", ""), job.inputs.get("duration", "")
        print(f"    submit {job_id}: {quality} {duration}s")
    if len(plan.submit) > 10:
        print(f"    ... and {len(plan.submit) - 10} more")


def manifest_summary(display: str, manifest: Manifest) -> str:
    """``demo.yaml: 5 jobs, model X, 540p/5s x5, estimated $2.25``: one line, for people."""
    counts: Counter[tuple[str, str]] = Counter()
    total = 0.0
    unpriced = 0
    for job in manifest.jobs:
        counts[quality_and_duration(job.inputs)] += 1
        cost = estimate_job_cost(job.inputs)
        if cost is None:
            unpriced += 1
        else:
            total += cost
    order = sorted(counts, key=lambda qd: (_QUALITY_ORDER.get(qd[0], 99), qd[0], qd[1]))
    mix = ", ".join(f"{q}/{d}s x{counts[(q, d)]:,}" for q, d in order)
    n = len(manifest.jobs)
    cost_text = f"estimated ${total:,.2f}"
    if unpriced:
        cost_text += f" (+{unpriced:,} jobs without a known price)"
    jobs = f"{n:,} job{'s' if n != 1 else ''}"
    return f"{display}: {jobs}, model {manifest.model}, {mix}, {cost_text}"
