"""What a person reads at the end of a run, and before one (``--dry-run``)."""

from __future__ import annotations

import math
import sys
from collections import Counter
from collections.abc import Callable
from itertools import repeat
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from ..errors import printable
from ..models.prices import SECONDS_INPUTS

if TYPE_CHECKING:  # the engine and the ledger load only for what needs them
    from ..engine.result import RunResult
    from ..manifest.job import Job
    from ..manifest.loader import Manifest

#: Failures listed by name in the summary; the rest are counted.
MAX_LISTED = 20


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
    from ..engine.plan import plan_run
    from ..ledger.reading import has_ledger, read_ledger
    from ..ledger.state import LedgerState

    state = read_ledger(out_dir) if has_ledger(out_dir) else LedgerState()
    plan = plan_run(manifest.jobs, state, retry_failed=retry_failed)
    jobs = {job.id: job for job in manifest.jobs}
    submit = [jobs[j] for j in plan.submit if j in jobs]
    estimate = sum(job.estimate or 0.0 for job in submit)
    unknown = sum(1 for job in submit if job.estimate is None)
    extra = f"; {unknown} without a known price" if unknown else ""
    resumed = len(plan.track) + len(plan.reconcile) + len(plan.download)
    print(f"dry run of {manifest.path} into {out_dir} (nothing is sent)")
    print(f"  would submit:   {len(plan.submit)} jobs (estimated ${estimate:.2f}{extra})")
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
    several = len(manifest.models) > 1
    for job in submit[:10]:
        where = f"{job.model} " if several else ""
        print(f"    submit {job.id}: {where}{' '.join(_mix_key(manifest, job))}".rstrip())
    if len(plan.submit) > 10:
        print(f"    ... and {len(plan.submit) - 10} more")


def _mix_key(manifest: Manifest, job: Job) -> tuple[str, ...]:
    """The inputs a job's price depends on (PixVerse: ``540p``, ``5s``), as written."""
    names, shown = _mixer(manifest, job.model)
    return shown(tuple(map(job.inputs.get, names)))


def _mixer(
    manifest: Manifest, model: str
) -> tuple[tuple[str, ...], Callable[[tuple[str | None, ...]], tuple[str, ...]]]:
    """The inputs a price mix is made of on ``model``, and how the values a job has for
    them (None: not set) are shown: ``("540p", "5")`` -> ``("540p", "5s")``."""
    definition = manifest.definition(model)
    if definition is None:
        return (), lambda _values: ()
    prices = definition.prices
    defaults = prices.defaults
    names = prices.axes
    suffixes = tuple("s" if name in SECONDS_INPUTS else "" for name in names)

    def shown(values: tuple[str | None, ...]) -> tuple[str, ...]:
        return tuple(
            # unset or empty: the model's default, as PriceBook.values takes it
            (value or defaults.get(name, "")) + suffix
            for name, value, suffix in zip(names, values, suffixes, strict=True)
        )

    return names, shown


def _mix_counts(manifest: Manifest, model: str) -> Counter[tuple[str, ...]]:
    """How many jobs have each price mix. The jobs' values are read a pass per input
    with ``map(dict.get, ...)`` and counted with ``Counter``, all in C; the few distinct
    mixes are shown after. (The whole summary of 100,000 jobs: 0.069 s with a function
    per job, 0.043 s so.)"""
    names, shown = _mixer(manifest, model)
    if not names:
        return Counter()
    inputs = list(map(attrgetter("inputs"), manifest.jobs))
    columns = (map(dict.get, inputs, repeat(name)) for name in names)
    raw = Counter(zip(*columns, strict=True))
    counts: Counter[tuple[str, ...]] = Counter()
    for values, count in raw.items():
        counts[shown(values)] += count
    return counts


def _mix_order(manifest: Manifest, model: str, key: tuple[str, ...]) -> tuple[object, ...]:
    """Sort key for a price mix: each value's position among its input's options."""
    definition = manifest.definition(model)
    if definition is None:
        return key
    order: list[object] = []
    for name, value in zip(definition.prices.axes, key, strict=False):
        item = definition.item(name)
        options = [o.value for o in item.options] if item is not None else []
        plain = value[:-1] if name in SECONDS_INPUTS and value.endswith("s") else value
        order += [options.index(plain) if plain in options else len(options), value]
    return tuple(order)


def manifest_summary(display: str, manifest: Manifest) -> str:
    """``demo.yaml: 5 jobs, model X, 540p/5s x5, estimated $2.25``: one line, for people.
    With several models: ``..., 3 models (A x2, B x2, C x2), estimated ...``."""
    prices = Counter(map(attrgetter("estimate"), manifest.jobs))  # a few prices, in C
    unpriced = prices.pop(None, 0)
    total = math.fsum(price * count for price, count in prices.items())
    n = len(manifest.jobs)
    cost_text = f"estimated ${total:,.2f}"
    if unpriced:
        cost_text += f" (+{unpriced:,} jobs without a known price)"
    jobs = f"{n:,} job{'s' if n != 1 else ''}"
    per_model = Counter(map(attrgetter("model"), manifest.jobs))
    if len(per_model) > 1:
        models = ", ".join(f"{m} x{c:,}" for m, c in per_model.items())
        return f"{display}: {jobs}, {len(per_model)} models ({models}), {cost_text}"
    model = next(iter(per_model), manifest.model)
    counts = _mix_counts(manifest, model)
    order = sorted(counts, key=lambda k: _mix_order(manifest, model, k))
    mix = ", ".join(f"{'/'.join(k)} x{counts[k]:,}" for k in order if k)
    return f"{display}: {jobs}, model {model}, {mix + ', ' if mix else ''}{cost_text}"
