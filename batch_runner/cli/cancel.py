"""``batch-runner cancel DIR``: cancel or kill every task in flight for a folder."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    c = subparsers.add_parser("cancel", help="cancel or kill every task in flight for a folder")
    c.add_argument("out_dir", type=Path, metavar="DIR", help="the run's output folder")
    c.add_argument("--api-base", help="API base URL (default: $WIRO_API_BASE)")
    c.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    import asyncio

    from ..engine.cancel import cancel

    stopped, failed = asyncio.run(cancel(args.out_dir, api_base=args.api_base))
    print(
        f"cancelled {stopped} tasks in flight"
        + (f"; {failed} could not be stopped" if failed else "")
    )
    return 0 if not failed else 1
