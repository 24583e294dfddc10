"""Throughput (the issue-4 figure): jobs/s and CPU per job of the runner with its defaults.

    python benchmarks/bench_throughput.py [--jobs 2000] [--concurrency 64] [--server sandbox]

Why beside the ceiling: this is the runner as a user starts it (push by WebSocket, the
default polling schedule) against the sandbox's near-instant tasks, so it shows what the
defaults cost end to end. With ``--server standin`` (no WebSocket) the runner polls with
``--no-socket --poll-interval 0.05``. jobs/s = jobs / the runner process's wall time; CPU
per job = its user + system time / jobs (the server's CPU is reported apart).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Figure, Report, bench_parser, count_files, print_report, rel, workdir
from jobsets import FAST_POLL, engine_wall, runner_cmd, write_manifest
from servers import against, describe


def run(
    jobs: int = 2000, concurrency: int = 64, base: Path | None = None, server: str = "sandbox"
) -> Report:
    report = Report(
        bench_cmd=f"python {rel(__file__)} --jobs {jobs} --concurrency {concurrency} "
        f"--server {server}"
    )
    with workdir(base, "throughput") as folder:
        manifest = write_manifest(folder / "throughput.yaml", jobs, tag="throughput")
        out = folder / "out"
        extra = FAST_POLL if server == "standin" else ()
        row, m = against("throughput", runner_cmd(manifest, out, concurrency, *extra), folder,
                         jobs, server=server)  # fmt: skip
        if count_files(out) != jobs:
            raise RuntimeError(f"throughput: {count_files(out)} of {jobs} outputs saved")
    row["engine_wall"] = engine_wall(m)
    report.commands += [row["server"], row["command"]]
    report.raw = row
    report.other_load = row["other_load"]
    note = f"{jobs} near-instant jobs, concurrency {concurrency}, {server}"
    report.add(
        Figure("throughput", "runner jobs/s", row["jobs_per_s"], "jobs/s", command=row["command"],
               note=f"{note}; wall {row['wall']:.1f} s, engine wall {row['engine_wall']} s"),
        Figure("throughput", "runner CPU per job", row["cpu_per_job_ms"], "ms",
               command=row["command"],
               note=f"user {row['user']:.1f} s + system {row['system']:.1f} s; {describe(row)}"),
    )  # fmt: skip
    return report


def main() -> None:
    args = bench_parser(__doc__, jobs=2000, concurrency=64, server="sandbox").parse_args()
    print_report(run(args.jobs, args.concurrency, args.workdir, args.server), raw=args.json)


if __name__ == "__main__":
    main()
