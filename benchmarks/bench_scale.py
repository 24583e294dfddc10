"""Scale: a 100,000-job manifest, validated, run against instant tasks, then resumed.

    python benchmarks/bench_scale.py [--jobs 100000] [--concurrency 256]

Each step is the real CLI in its own process (the sandbox is another process, so the
runner's peak RSS is its own): ``batch-runner validate`` (wall time, peak RSS), a full
``batch-runner run`` against near-instant sandbox tasks (wall, jobs/s, CPU, peak RSS), the
ledger's size on disk (``ledger.json`` + ``journal.jsonl``) and the same ``run`` again on
the finished folder, which must submit nothing (the time to resume when every job is done:
read the ledger, check the outputs, exit).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    BENCH,
    PY,
    Figure,
    Measured,
    Report,
    SandboxProcess,
    banner,
    check,
    cores,
    count_files,
    dir_size,
    engine_wall,
    measure,
    rel,
    runner_cmd,
    show,
    workdir,
    write_manifest,
)

LEDGER_FILES = ("ledger.json", "journal.jsonl")
SHIM = BENCH / "tick_shim.py"


class Watchdog:
    """Stops the stock full run when it is projected to take longer than ``budget`` seconds.

    Progress counts both halves of a job, as the runner may submit far ahead of its
    downloads: tasks created on the sandbox plus outputs saved, out of 2 x jobs. After a
    grace period the end is projected from the rate over the last minute. A stopped run
    is then finished with ``tick_shim.py``.
    """

    def __init__(self, out: Path, jobs: int, budget: float, sandbox: SandboxProcess) -> None:
        self.out, self.jobs, self.budget, self.sandbox = out, jobs, budget, sandbox
        self.grace = min(180.0, budget / 4)
        self.history: list[tuple[float, int, int]] = []
        self.rate = 0.0  # jobs/s equivalent: (created + saved) / 2 per second
        self.projected: float | None = None
        self.done = 0
        self.created = 0

    def __call__(self, elapsed: float) -> bool:
        self.done = count_files(self.out) if self.out.exists() else 0
        with contextlib.suppress(OSError, ValueError, KeyError):
            self.created = int(self.sandbox.stats()["tasks_created"])
        self.history.append((elapsed, self.created, self.done))
        if elapsed < self.grace:
            return False
        then, created_then, done_then = next(
            (h for h in self.history if h[0] >= elapsed - 60), (0.0, 0, 0)
        )
        span = elapsed - then
        units = (self.created - created_then) + (self.done - done_then)
        self.rate = units / 2 / span if span > 0 else 0.0
        left = (2 * self.jobs - self.created - self.done) / 2
        self.projected = elapsed + left / self.rate if self.rate > 0 else float("inf")
        return self.projected > self.budget


def run(jobs: int, concurrency: int, base: Path | None, budget: float = 1800.0) -> Report:
    report = Report()
    self_cmd = f"python {rel(__file__)} --jobs {jobs} --concurrency {concurrency}"
    report.bench_cmd = self_cmd
    with workdir(base, "scale") as folder:
        manifest = write_manifest(folder / "big.yaml", jobs, tag="scale")
        mb = manifest.stat().st_size / 1e6
        validate = [PY, "-m", "batch_runner", "validate", str(manifest)]
        banner(f"scale: {show(validate)}")
        v = report.saw(measure(validate, log=folder / "validate.log"))
        check(v, "validate")
        out = folder / "out"
        cmd = runner_cmd(manifest, out, concurrency)
        shim_cmd = [PY, str(SHIM), *cmd[3:]]
        finish: Measured | None = None
        with SandboxProcess(log=folder / "sandbox.log") as sb:
            dog = Watchdog(out, jobs, budget, sb)
            env = sb.env()
            banner(f"scale: full run: {show(cmd)} (time budget {budget:.0f} s)")
            first = report.saw(
                measure(cmd, env=env, log=folder / "run.log", sandbox=sb, watch=dog,
                        watch_every=min(15.0, budget / 20))
            )  # fmt: skip
            if first.stopped:
                banner(
                    f"scale: stock run stopped after {first.wall:.0f} s, {dog.created} tasks "
                    f"created, {dog.done} jobs saved, {dog.rate:.1f} jobs/s; finishing with "
                    f"{show(shim_cmd)}"
                )
                finish = report.saw(
                    measure(shim_cmd, env=env, log=folder / "run-shim.log", sandbox=sb)
                )
                check(finish, "full run (tick shim)")
            else:
                check(first, "full run")
            created = sb.stats()["tasks_created"]
            ledger_bytes = dir_size(out, LEDGER_FILES)
            banner(f"scale: resume of the finished folder: {show(cmd)}")
            again = report.saw(measure(cmd, env=env, log=folder / "resume.log", sandbox=sb))
            check(again, "resume")
            created_again = sb.stats()["tasks_created"]
        saved = count_files(out)
        if saved != jobs or created != jobs or created_again != created:
            raise RuntimeError(
                f"scale: {saved} outputs, {created} tasks, then {created_again} after resume"
            )
        report.commands += [show(validate), sb.command, show(cmd)]
        if finish is not None:
            report.commands.append(show(shim_cmd) + "   # finishes the stopped run")
        report.commands.append(show(cmd) + "   # again: resume of the finished folder")
        report.raw = {
            "jobs": jobs, "manifest_mb": mb, "budget": budget,
            "validate": {"wall": v.wall, "rss_mb": v.rss_mb, "cpu": v.cpu, "out": v.out.strip(),
                         "other_load": v.other_load},
            "run": {"wall": first.wall, "engine_wall": engine_wall(first), "cpu": first.cpu,
                    "rss_mb": first.rss_mb, "stopped": first.stopped, "saved": dog.done,
                    "created": dog.created,
                    "rate_last_minute": dog.rate, "projected": dog.projected,
                    "history": dog.history, "sandbox_cpu": first.sandbox_cpu,
                    "other_load": first.other_load, "code": first.code},
            "finish": None if finish is None else {
                "wall": finish.wall, "engine_wall": engine_wall(finish), "cpu": finish.cpu,
                "rss_mb": finish.rss_mb, "jobs": jobs - dog.done,
                "sandbox_cpu": finish.sandbox_cpu, "other_load": finish.other_load},
            "ledger_bytes": ledger_bytes,
            "resume": {"wall": again.wall, "cpu": again.cpu, "rss_mb": again.rss_mb,
                       "engine_wall": engine_wall(again), "out": again.out.strip(),
                       "other_load": again.other_load},
        }  # fmt: skip
    n = f"{jobs:,} jobs"
    report.add(
        Figure("scale", f"validate {n}", v.wall, "s", command=show(validate),
               note=f"manifest {mb:.1f} MB, peak RSS {v.rss_mb:.0f} MB"),
    )  # fmt: skip
    peak = max(first.rss_mb, finish.rss_mb if finish else 0.0)
    if finish is None:
        report.add(
            Figure("scale", f"full run {n}: throughput", jobs / first.wall, "jobs/s",
                   command=show(cmd),
                   note=f"concurrency {concurrency}, instant tasks; wall {first.wall:.0f} s, "
                   f"CPU {first.cpu:.0f} s ({first.cpu / jobs * 1000:.2f} ms/job)"),
            Figure("scale", f"full run {n}: peak RSS", peak, "MB", "< 300 MB", peak < 300,
                   show(cmd)),
        )  # fmt: skip
    else:
        projected = dog.projected or float("inf")
        hours = f"{projected / 3600:.1f} h" if projected != float("inf") else "never"
        stock_cpu = first.cpu / max(dog.done, 1) * 1000
        report.add(
            Figure("scale", f"full run {n}, stock CLI: throughput", dog.rate, "jobs/s",
                   command=show(cmd),
                   note=f"stopped by the benchmark after {first.wall:.0f} s with {dog.created:,} "
                   f"tasks created and {dog.done:,} jobs saved (rate over the last minute, "
                   f"(created + saved) / 2; projected end after {hours}, budget "
                   f"{budget:.0f} s); {stock_cpu:.0f} ms CPU per saved job"),
            Figure("scale", f"full run {n}, rest with tick_shim: throughput",
                   (jobs - dog.done) / finish.wall, "jobs/s", command=show(shim_cmd),
                   note=f"{jobs - dog.done:,} jobs in {finish.wall:.0f} s, CPU {finish.cpu:.0f} s; "
                   "Runner._tick limited to 4/s (benchmarks/tick_shim.py), nothing else changed"),
            Figure("scale", f"full run {n}: peak RSS", peak, "MB", "< 300 MB", peak < 300,
                   show(cmd),
                   f"stock part {first.rss_mb:.0f} MB, tick_shim part {finish.rss_mb:.0f} MB"),
        )  # fmt: skip
    report.add(
        Figure("scale", f"ledger size, {n}", ledger_bytes / 1e6, "MB", command=self_cmd,
               note="ledger.json + journal.jsonl after the run"),
        Figure("scale", f"resume, all {n} done", again.wall, "s", "< 3 s", again.wall < 3,
               show(cmd) + "  (again)",
               f"stock CLI; peak RSS {again.rss_mb:.0f} MB, CPU {again.cpu:.1f} s; "
               "no task submitted"),
    )  # fmt: skip
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument(
        "--budget", type=float, default=1800.0,
        help="seconds the stock full run may take (projected) before it is stopped and "
        "finished with tick_shim.py (default 1800)",
    )  # fmt: skip
    parser.add_argument("--workdir", type=Path, help="keep the work files here")
    args = parser.parse_args()
    report = run(args.jobs, args.concurrency, args.workdir, args.budget)
    print(f"cores: {cores()}")
    for f in report.figures:
        print(f"{f.name:40} {f.text():>12}  {f.note}")
    print(json.dumps(report.raw, indent=1))


if __name__ == "__main__":
    main()
