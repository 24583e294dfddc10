"""Throughput (the issue-4 figure): jobs/s and CPU seconds per job, near-instant tasks.

    python benchmarks/bench_throughput.py [--jobs 2000] [--concurrency 64]

The runner (the real CLI) runs ``--jobs`` near-instant sandbox jobs at ``--concurrency``
against a sandbox in a separate process. jobs/s = jobs / the runner process's wall time;
CPU s/job = the runner process's user + system time / jobs (the sandbox's CPU is not in it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    Figure,
    Report,
    SandboxProcess,
    banner,
    check,
    cores,
    count_files,
    engine_wall,
    measure,
    rel,
    runner_cmd,
    show,
    workdir,
    write_manifest,
)


def run(jobs: int, concurrency: int, base: Path | None) -> Report:
    report = Report(bench_cmd=f"python {rel(__file__)} --jobs {jobs} --concurrency {concurrency}")
    with workdir(base, "throughput") as folder:
        manifest = write_manifest(folder / "throughput.yaml", jobs, tag="throughput")
        out = folder / "out"
        cmd = runner_cmd(manifest, out, concurrency)
        with SandboxProcess(log=folder / "sandbox.log") as sb:
            banner(f"throughput: {show(cmd)}")
            m = report.saw(measure(cmd, env=sb.env(), log=folder / "runner.log", sandbox=sb))
            check(m, "runner")
            stats = sb.stats()
        if count_files(out) != jobs:
            raise RuntimeError(f"throughput: {count_files(out)} of {jobs} outputs saved")
    report.commands += [sb.command, show(cmd)]
    report.raw = {
        "jobs": jobs, "concurrency": concurrency, "wall": m.wall, "engine_wall": engine_wall(m),
        "cpu": m.cpu, "user": m.user, "system": m.system, "rss_mb": m.rss_mb,
        "sandbox_cpu": sb.cpu, "requests": stats.get("requests", {}),
        "other_load": m.other_load,
    }  # fmt: skip
    note = f"{jobs} near-instant jobs, concurrency {concurrency}"
    report.add(
        Figure("throughput", "runner jobs/s", jobs / m.wall, "jobs/s", command=show(cmd),
               note=f"{note}; wall {m.wall:.1f} s, sandbox CPU {sb.cpu or 0:.1f} s"),
        Figure("throughput", "runner CPU per job", m.cpu / jobs * 1000, "ms", command=show(cmd),
               note=f"user {m.user:.1f} s + system {m.system:.1f} s, "
               f"peak RSS {m.rss_mb:.0f} MB"),
    )  # fmt: skip
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--workdir", type=Path, help="keep the work files here")
    args = parser.parse_args()
    report = run(args.jobs, args.concurrency, args.workdir)
    print(f"cores: {cores()}")
    for f in report.figures:
        print(f"{f.name:24} {f.text():>12}  {f.note}")
    print(json.dumps(report.raw, indent=1))


if __name__ == "__main__":
    main()
