"""``batch-runner validate MANIFEST...``: check manifests without sending anything.

Exit 0 with one summary line per manifest when all are valid; exit 2 when any is not, with
every problem (capped per manifest, with a count of the rest) on stderr, each starting with
``file:line:`` so editors and terminals can jump to it. A model with no local definition is
fetched (one line on stderr says so) unless ``--offline``.
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
            "Check each manifest (structure, inputs against each model's definition, ids, "
            "local files, CSV/JSON Lines job files, matrix) and print one summary line per "
            "manifest. Exit 0 when all are valid, 2 otherwise, with every problem found on "
            "stderr. Nothing is submitted; a model without a local definition is fetched "
            "from the service (or the sandbox) and cached, unless --offline."
        ),
    )
    parser.add_argument("manifests", nargs="+", type=Path, metavar="MANIFEST")
    add_definition_flags(parser)
    parser.set_defaults(func=run)


def add_definition_flags(parser: argparse.ArgumentParser) -> None:
    """Where model definitions may be fetched from (shared with ``models``)."""
    parser.add_argument(
        "--offline",
        action="store_true",
        help="never fetch model definitions (use those beside the manifest, in the user "
        "cache, in the package)",
    )
    parser.add_argument(
        "--sandbox",
        action="store_true",
        help="fetch definitions from the built-in sandbox (as run --sandbox does)",
    )
    parser.add_argument(
        "--api-base", help="API base URL (default: $WIRO_API_BASE or https://api.wiro.ai/v1)"
    )


def run(args: argparse.Namespace) -> int:
    """Validate each manifest given; the exit code is 2 if any is invalid."""
    from ..errors import UsageError

    for name, default in (("offline", False), ("sandbox", False), ("api_base", None)):
        if not hasattr(args, name):  # a namespace built by a caller, not by the parser
            setattr(args, name, default)
    if args.sandbox and args.api_base:
        raise UsageError("--sandbox uses the built-in sandbox; drop --api-base.")
    if not args.sandbox:  # no event loop and no engine to load: definitions come as for run
        return _validate_all(args)
    from ..engine.api import in_loop

    return in_loop(_validate(args))


def _validate_all(args: argparse.Namespace) -> int:
    from ..errors import ManifestError
    from ..manifest.loader import load_manifest
    from ..models.resolver import Resolver
    from ..report.summary import manifest_summary
    from .run import note

    resolver = Resolver.from_env(api_base=args.api_base, offline=args.offline, on_note=note)
    failed = 0
    for path in args.manifests:
        try:
            manifest = load_manifest(path, resolver=resolver)
        except ManifestError as exc:
            failed += 1
            _print_failure(exc)
            continue
        print(manifest_summary(str(path), manifest))
    return 2 if failed else 0


def _print_failure(exc: Any) -> None:
    for issue in exc.issues:
        print(issue, file=sys.stderr)
    print(f"error: {exc.message}", file=sys.stderr)


async def _validate(args: argparse.Namespace) -> int:
    from ..engine.api import load_for_run, started_sandbox
    from ..errors import ManifestError
    from ..report.summary import manifest_summary
    from .run import note

    failed = 0
    async with started_sandbox(args.sandbox) as sb:
        for path in args.manifests:
            try:
                manifest = await load_for_run(
                    path, sandbox=sb, api_base=args.api_base, offline=args.offline, on_note=note
                )
            except ManifestError as exc:
                failed += 1
                _print_failure(exc)
                continue
            print(manifest_summary(str(path), manifest))
    return 2 if failed else 0
