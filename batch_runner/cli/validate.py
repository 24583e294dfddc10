"""``batch-runner validate MANIFEST...``: check manifests without sending anything.

Exit 0 with one summary line per manifest when all are valid; exit 2 when any is not, with
every problem (capped per manifest, with a count of the rest) on stderr, each starting with
``file:line:`` so editors and terminals can jump to it. Nothing else is printed.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from ..errors import ManifestError
from ..manifest.loader import Manifest, load_manifest
from ..manifest.pricing import PRICES_USD, estimate_job_cost, quality_and_duration

_QUALITY_ORDER = {quality: n for n, (quality, _d) in enumerate(PRICES_USD)}


def register(subparsers: Any) -> None:
    """Add the ``validate`` subcommand to the CLI's subparsers."""
    parser = subparsers.add_parser(
        "validate",
        help="check manifests and estimate their cost; sends nothing",
        description=(
            "Check each manifest (structure, inputs, ids, local images, CSV/JSON Lines job "
            "files, matrix) and print one summary line per manifest. Exit 0 when all are "
            "valid, 2 otherwise, with every problem found on stderr."
        ),
    )
    parser.add_argument("manifests", nargs="+", type=Path, metavar="MANIFEST")
    parser.set_defaults(func=run)


def summary(display: str, manifest: Manifest) -> str:
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


def run(args: argparse.Namespace) -> int:
    """Validate each manifest given; the exit code is 2 if any is invalid."""
    failed = 0
    for path in args.manifests:
        try:
            manifest = load_manifest(path)
        except ManifestError as exc:
            failed += 1
            for issue in exc.issues:
                print(issue, file=sys.stderr)
            print(f"error: {exc.message}", file=sys.stderr)
            continue
        print(summary(str(path), manifest))
    return 2 if failed else 0
