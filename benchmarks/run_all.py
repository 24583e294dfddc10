"""Run every issue-6 benchmark and print one table.

    python benchmarks/run_all.py            # the sizes the issue asks for (many minutes)
    python benchmarks/run_all.py --quick    # small sizes: a smoke run of every benchmark
    python benchmarks/run_all.py --only slots --only ceiling

Every figure comes with the command that reproduces it alone and the machine's core count.
The server (stand-in or sandbox) always runs as a separate process and the runner as the real
CLI, so the CPU time and peak RSS shown are the runner's own. The table, the exact commands
run and the raw numbers are also written to ``benchmarks/results/`` (Markdown and JSON;
gitignored).

Benchmarks (full size / --quick):

* throughput: 2,000 / 300 near-instant sandbox jobs at concurrency 64, the runner's defaults
  (WebSocket push);
* ceiling: 3,000 / 500 instant jobs at concurrency 128 against the stand-in server, the raw
  aiohttp loop vs the runner (``--no-socket --poll-interval 0.05``), CPU per job and the
  server's share; median of 3 interleaved rounds (1 with --quick);
* peer: 500 / 100 near-instant jobs at concurrency 128, GNU parallel + curl + jq vs runner;
* slots: 400 / 80 jobs of 2-6 s at concurrency 40, push and polling only;
* shards: 2,000 / 300 instant jobs, 1 worker vs 4 shard workers under one limit of 64;
* validate: 100,000 / 5,000 jobs in four manifest layouts;
* scale: 100,000 / 2,000 instant jobs against the stand-in at concurrency 256: --version,
  status, validate, the full run, ledger and gallery sizes, re-run, status.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_ceiling
import bench_peer
import bench_scale
import bench_shards
import bench_slots
import bench_throughput
import bench_validate
from common import RESULTS, ROOT, Figure, Report, Skipped, cores

SIZES = {
    "full": {
        "throughput": {"jobs": 2000, "concurrency": 64},
        "ceiling": {"jobs": 3000, "concurrency": 128, "repeat": 3},
        "peer": {"jobs": 500, "concurrency": 128},
        "slots": {"jobs": 400, "concurrency": 40, "run_seconds": (2.0, 6.0)},
        "shards": {"jobs": 2000, "workers": 4, "limit": 64},
        "validate": {"jobs": 100_000},
        "scale": {"jobs": 100_000, "concurrency": 256, "repeat": 3},
    },
    "quick": {
        "throughput": {"jobs": 300, "concurrency": 64},
        "ceiling": {"jobs": 500, "concurrency": 128, "repeat": 1},
        "peer": {"jobs": 100, "concurrency": 128},
        "slots": {"jobs": 80, "concurrency": 40, "run_seconds": (2.0, 6.0)},
        "shards": {"jobs": 300, "workers": 4, "limit": 64},
        "validate": {"jobs": 5000},
        "scale": {"jobs": 2000, "concurrency": 256, "repeat": 1},
    },
}
MODULES = {
    "throughput": bench_throughput,
    "ceiling": bench_ceiling,
    "peer": bench_peer,
    "slots": bench_slots,
    "shards": bench_shards,
    "validate": bench_validate,
    "scale": bench_scale,
}
ORDER = tuple(MODULES)


def machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import aiohttp
        import uvloop

        libs = f"aiohttp {aiohttp.__version__}, uvloop {uvloop.__version__}"
    except ImportError:
        libs = "uvloop not installed"
    return (
        f"cores: {cores()} (os.cpu_count()){', ' + model if model else ''}; "
        f"{platform.system()} {platform.release()}; Python {platform.python_version()}; {libs}"
    )


def revision() -> str:
    """The commit measured, and whether the engine had uncommitted changes."""
    import subprocess

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return done.stdout.rstrip() if done.returncode == 0 else ""

    sha = git("rev-parse", "--short", "HEAD")
    if not sha:
        return "engine: not a git checkout"
    dirty = git("status", "--porcelain", "--", "batch_runner")
    changed = [line[3:] for line in dirty.splitlines() if line.strip()]
    extra = f" + uncommitted changes in {', '.join(changed)}" if changed else ""
    return f"engine: git {sha}{extra}"


def table(rows: list[tuple[Figure, str]]) -> list[str]:
    """Markdown table: one line per figure, the command reproducing it and the process measured."""
    out = [
        "| benchmark | figure | value | target | met | reproduce | process measured | notes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for f, cmd in rows:
        met = "" if f.ok is None else ("yes" if f.ok else "**no**")
        measured = f"`{f.command}`" if f.command and f.command != cmd else ""
        out.append(
            f"| {f.bench} | {f.name} | {f.text()} | {f.target} | {met} | `{cmd}` | {measured} "
            f"| {f.note} |"
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--only", action="append", choices=ORDER, help="run only these")
    parser.add_argument("--workdir", type=Path, help="keep work files here (default: temp)")
    args = parser.parse_args()
    mode = "quick" if args.quick else "full"
    chosen = [name for name in ORDER if not args.only or name in args.only]
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
    at_start = revision()
    header = f"{machine()}\n{at_start}"
    print(header, flush=True)
    started = time.perf_counter()
    reports: dict[str, Report] = {}
    timings: dict[str, float] = {}
    failed: dict[str, str] = {}
    skipped: dict[str, str] = {}
    for name in chosen:
        sizes = SIZES[mode][name]
        t0 = time.perf_counter()
        try:
            reports[name] = MODULES[name].run(**sizes, base=args.workdir)
        except Skipped as exc:
            skipped[name] = str(exc)
        except Exception as exc:  # keep going: one broken benchmark must not hide the rest
            failed[name] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
        timings[name] = time.perf_counter() - t0
    total = time.perf_counter() - started
    at_end = revision()
    if at_end != at_start:
        header += f"\n**the engine changed during the run**; at the end: {at_end}"

    rows = [(f, r.bench_cmd) for r in reports.values() for f in r.figures]
    lines = [
        f"# batch-runner benchmarks ({mode}), {time.strftime('%Y-%m-%d %H:%M')}",
        "",
        header,
        "",
        *table(rows),
        "",
    ]
    for name, error in failed.items():
        lines.append(f"- **{name} failed**: {error}")
    for name, why in skipped.items():
        lines.append(f"- {name} skipped: {why}")
    loaded = {n: r.other_load for n, r in reports.items() if r.other_load >= 0.1}
    if loaded:
        lines.append(
            "Other programs loaded the machine during: "
            + ", ".join(f"{n} (up to {v:.1f} of {cores()} cores)" for n, v in loaded.items())
            + "; those figures are pessimistic."
        )
    missed = [f for f, _ in rows if f.ok is False]
    if args.quick:
        lines.append(
            "--quick sizes are a smoke run (start-up dominates small runs, 80 slot jobs are "
            "two waves): the targets are judged at full size."
        )
    if missed:
        lines.append("Targets missed: " + "; ".join(f"{f.name} ({f.text()})" for f in missed))
    lines += [
        "",
        f"Whole benchmark run: {total:.0f} s ("
        + ", ".join(f"{n} {t:.0f} s" for n, t in timings.items())
        + f"); command: `python benchmarks/run_all.py{' --quick' if args.quick else ''}`",
        "",
        "## Commands run (each benchmark's servers, then its clients)",
        "",
    ]
    for name, report in reports.items():
        lines.append(f"- {name}: `{report.bench_cmd}`")
        lines += [f"  - `{c}`" for c in report.commands]
    text = "\n".join(lines) + "\n"
    print()
    print(text)

    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = RESULTS / f"{stamp}-{mode}"
    base.with_suffix(".md").write_text(text, "utf-8")
    payload = {
        "mode": mode, "machine": header, "cores": cores(), "pid": os.getpid(),
        "total_seconds": total, "seconds": timings, "failed": failed, "skipped": skipped,
        "other_load": {n: r.other_load for n, r in reports.items()},
        "figures": [dict(f.as_dict(), bench_command=cmd) for f, cmd in rows],
        "commands": {n: [r.bench_cmd, *r.commands] for n, r in reports.items()},
        "raw": {n: r.raw for n, r in reports.items()},
    }  # fmt: skip
    base.with_suffix(".json").write_text(json.dumps(payload, indent=1, default=str), "utf-8")
    print(f"written: {base.with_suffix('.md')} and .json", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
