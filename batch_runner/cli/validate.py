"""``batch-runner validate MANIFEST...``: check manifests without sending anything.

Exit 0 with one summary line per manifest when all are valid; exit 2 when any is not, with
every problem (capped per manifest, with a count of the rest) on stderr, each starting with
``file:line:`` so editors and terminals can jump to it. Nothing else is printed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


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


def run(args: argparse.Namespace) -> int:
    """Validate each manifest given; the exit code is 2 if any is invalid."""
    from ..errors import ManifestError
    from ..manifest.loader import load_manifest
    from ..report.summary import manifest_summary

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
        print(manifest_summary(str(path), manifest))
    return 2 if failed else 0
