"""``batch-runner status DIR``: an output folder's progress, failures and spend."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("status", help="show an output folder's progress, failures and spend")
    p.add_argument("out_dir", type=Path, metavar="DIR", help="the run's output folder")
    p.add_argument("--json", action="store_true", help="print one JSON object for machines")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from ..report.status import print_status, status_data

    data = status_data(args.out_dir)
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print_status(data)
    return 0
