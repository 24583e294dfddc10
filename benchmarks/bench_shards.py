"""Shards: one manifest run by 1 worker vs N shard workers sharing one account limit.

    python benchmarks/bench_shards.py [--jobs 2000] [--workers 4] [--limit 64] [--run-seconds 0]

Why: ``--shard K/N`` exists to spread one manifest over machines; on one machine it shows
whether the shards' coordination costs more than it buys, and the sandbox (its own
process, with the account's concurrency limit) counts duplicate tasks, which must be 0.
1 worker runs with ``--concurrency LIMIT``; N workers each run ``--shard K/N
--concurrency LIMIT/N``, started together and timed until the last one exits.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    Figure,
    Report,
    banner,
    bench_parser,
    check,
    measure_many,
    print_report,
    rel,
    show,
    workdir,
)
from jobsets import runner_cmd, write_manifest
from servers import SandboxProcess


def _seconds(text: str) -> tuple[float, float]:
    low, _, high = text.partition("-")
    return float(low), float(high or low)


def one_setup(
    folder: Path, jobs: int, workers: int, limit: int, run_s: tuple[float, float]
) -> dict:
    manifest = write_manifest(folder / f"m{workers}.yaml", jobs, tag=f"w{workers}")
    out = folder / f"out{workers}"
    conc = max(1, -(-limit // workers))
    cmds = [
        runner_cmd(
            manifest, out, conc, "-q", *(["--shard", f"{k}/{workers}"] if workers > 1 else [])
        )
        for k in range(workers)
    ]
    with SandboxProcess(concurrency_limit=limit, run_seconds=run_s, balance=100_000,
                        log=folder / f"sandbox-{workers}.log") as sb:  # fmt: skip
        banner(f"shards: {workers} worker(s): {show(cmds[0])}" + (" ..." if workers > 1 else ""))
        logs = [folder / f"worker-{workers}-{k}.log" for k in range(workers)]
        wall, results = measure_many(cmds, env=sb.env(), logs=logs, server=sb)
        stats = sb.stats()
    for k, m in enumerate(results):
        check(m, f"shard worker {k}/{workers}")
    return {
        "workers": workers, "concurrency_per_worker": conc, "wall": wall, "jobs_per_s": jobs / wall,
        "cpu": sum(m.cpu for m in results), "rss_mb_max": max(m.rss_mb for m in results),
        "duplicates": stats.get("duplicate_tasks"), "max_in_flight": stats.get("max_in_flight"),
        "server": sb.command, "commands": [show(c) for c in cmds],
        "other_load": max(m.other_load for m in results),
        "server_cpu": results[0].server_cpu,
    }  # fmt: skip


def run(
    jobs: int = 2000, workers: int = 4, limit: int = 64, run_seconds: tuple[float, float] = (0, 0),
    base: Path | None = None,
) -> Report:  # fmt: skip
    low, high = run_seconds
    report = Report(
        bench_cmd=f"python {rel(__file__)} --jobs {jobs} --workers {workers} --limit {limit} "
        f"--run-seconds {low:g}-{high:g}"
    )
    with workdir(base, "shards") as folder:
        rows = [one_setup(folder, jobs, n, limit, run_seconds) for n in (1, workers)]
    report.raw = {"rows": rows}
    for row in rows:
        report.commands += [row["server"], *row["commands"]]
        report.other_load = max(report.other_load, row["other_load"])
        report.add(
            Figure("shards", f"{row['workers']} worker(s), wall", row["wall"], "s",
                   command=" & ".join(row["commands"]),
                   note=f"{jobs} jobs of {low:g}-{high:g} s, account limit {limit}, "
                   f"{row['jobs_per_s']:.0f} jobs/s, CPU {row['cpu']:.1f} s in all, max "
                   f"{row['max_in_flight']} in flight, peak RSS {row['rss_mb_max']:.0f} MB/worker, "
                   f"sandbox CPU {row['server_cpu'] / jobs * 1000:.2f} ms/task"),
            Figure("shards", f"{row['workers']} worker(s), duplicate tasks", row["duplicates"], "",
                   "0", row["duplicates"] == 0, report.bench_cmd),
        )  # fmt: skip
    return report


def main() -> None:
    parser = bench_parser(__doc__, jobs=2000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--limit", type=int, default=64)
    parser.add_argument("--run-seconds", type=_seconds, default=(0.0, 0.0), metavar="A-B")
    args = parser.parse_args()
    report = run(args.jobs, args.workers, args.limit, args.run_seconds, args.workdir)
    print_report(report, raw=args.json)


if __name__ == "__main__":
    main()
