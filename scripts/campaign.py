#!/usr/bin/env python3
"""The long fault-and-kill campaign, with its own report.

Runs the real ``batch-runner run`` against the sandbox with every fault switched on, kills it
with SIGKILL at seeded random moments, restarts it each time, lets it finish, then audits the
outcome from the sandbox's own task records and the output folder (see
``tests/campaignlib.py`` for the invariants). Exit status 0 when every invariant holds.

    python scripts/campaign.py --jobs 300 --kills 30 --seed 7
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "tests"), str(REPO)]

from campaignlib import (  # noqa: E402
    DEFAULT_RATES,
    CampaignConfig,
    audit,
    report,
    run_campaign,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--jobs", type=int, default=300, help="manifest jobs (default 300)")
    p.add_argument("--kills", type=int, default=30, help="SIGKILLs before the finish (default 30)")
    p.add_argument("--seed", type=int, default=1, help="seeds faults and kill moments (default 1)")
    p.add_argument("--concurrency", type=int, default=16, help="--concurrency (default 16)")
    p.add_argument("--max-attempts", type=int, default=3, help="--max-attempts (default 3)")
    p.add_argument(
        "--kill-after",
        type=float,
        nargs=2,
        default=(0.8, 4.0),
        metavar=("LOW", "HIGH"),
        help="a killed run lives LOW..HIGH seconds (default 0.8 4)",
    )
    p.add_argument(
        "--rate",
        action="append",
        default=[],
        metavar="FAULT=RATE",
        help="override one fault rate (repeatable); defaults: "
        + ", ".join(f"{k}={v:g}" for k, v in DEFAULT_RATES.items()),
    )
    p.add_argument(
        "--run-seconds",
        type=float,
        nargs=2,
        default=(1.0, 3.0),
        metavar=("LOW", "HIGH"),
        help="how long a sandbox task runs (default 1 3: long enough for kills to land mid-flight)",
    )
    p.add_argument("--final-runs", type=int, default=10, help="runs allowed to finish (10)")
    p.add_argument("--keep", type=Path, help="work in this (new) folder and keep it")
    p.add_argument("--report", type=Path, help="also write the report to this file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rates = dict(DEFAULT_RATES)
    for spec in args.rate:
        name, _, value = spec.partition("=")
        if name not in rates:
            raise SystemExit(f"unknown fault {name!r}; known: {', '.join(rates)}")
        rates[name] = float(value)
    command = "python scripts/campaign.py " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )
    with tempfile.TemporaryDirectory(prefix="campaign-") as tmp:
        root = args.keep or Path(tmp)
        config = CampaignConfig(
            root=root,
            jobs=args.jobs,
            kills=args.kills,
            seed=args.seed,
            concurrency=args.concurrency,
            max_attempts=args.max_attempts,
            kill_after=tuple(args.kill_after),
            rates=rates,
            final_runs=args.final_runs,
            run_seconds=tuple(args.run_seconds),
            say=lambda line: print(line, flush=True),
        )
        campaign = asyncio.run(run_campaign(config))
        result = audit(campaign)
        text = report(campaign, result, command=command)
    print(text)
    if args.report:
        args.report.write_text(text + "\n", "utf-8")
    return 1 if result.violations else 0


if __name__ == "__main__":
    raise SystemExit(main())
