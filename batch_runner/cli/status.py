"""``batch-runner status DIR`` and ``batch-runner cancel DIR``: flags in, library calls out."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("status", help="show an output folder's progress, failures and spend")
    p.add_argument("out_dir", type=Path, metavar="DIR", help="the run's output folder")
    p.add_argument("--json", action="store_true", help="print one JSON object for machines")
    p.set_defaults(func=status_main)

    c = subparsers.add_parser("cancel", help="cancel or kill every task in flight for a folder")
    c.add_argument("out_dir", type=Path, metavar="DIR", help="the run's output folder")
    c.add_argument("--api-base", help="API base URL (default: $WIRO_API_BASE)")
    c.set_defaults(func=cancel_main)


def status_main(args: argparse.Namespace) -> int:
    from ..report.status import print_status, status_data

    data = status_data(args.out_dir)
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print_status(data)
    return 0


def cancel_main(args: argparse.Namespace) -> int:
    from ..engine.cancel import cancel

    stopped, failed = asyncio.run(cancel(args.out_dir, api_base=args.api_base))
    print(
        f"cancelled {stopped} tasks in flight"
        + (f"; {failed} could not be stopped" if failed else "")
    )
    return 0 if not failed else 1
