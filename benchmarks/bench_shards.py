"""Wall time of one manifest run by 1 worker vs N shard workers sharing one account limit.

    python benchmarks/bench_shards.py [--jobs 2000] [--workers 4] [--limit 64]

The sandbox runs as its own process with the account's concurrency limit; 1 worker runs
with ``--concurrency LIMIT``; N workers each run ``--shard K/N --concurrency LIMIT/N``.
Prints wall times, jobs/s, and the sandbox's duplicate count (must be 0).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent


def write_manifest(path: Path, count: int, tag: str) -> None:
    jobs = [
        {"id": f"j{i:06d}", "inputImageUrl": f"https://example.com/{i % 9}.jpg",
         "prompt": f"{tag} scene {i}"}
        for i in range(count)
    ]  # fmt: skip
    doc = {"defaults": {"quality": "360p", "duration": 5}, "jobs": jobs}
    path.write_text(yaml.safe_dump(doc), "utf-8")


def start_sandbox(limit: int, run_seconds: str) -> tuple[subprocess.Popen[str], str, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "batch_runner", "sandbox", "--port", "0",
         "--concurrency-limit", str(limit), "--balance", "100000",
         "--run-seconds", run_seconds, "--queue-seconds", "0"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
    return proc, fields["base_url"], fields["socket_url"]


def stats(base_url: str) -> dict[str, object]:
    origin = base_url.rsplit("/v1", 1)[0]
    with urllib.request.urlopen(f"{origin}/__sandbox/stats?brief=1") as resp:
        data: dict[str, object] = json.load(resp)
    return data


def run_workers(manifest: Path, out: Path, env: dict[str, str], workers: int, conc: int) -> float:
    started = time.monotonic()
    procs = []
    for k in range(workers):
        shard = ["--shard", f"{k}/{workers}"] if workers > 1 else []
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "batch_runner",
                    "run",
                    str(manifest),
                    "--out",
                    str(out),
                    "--concurrency",
                    str(conc),
                    "-q",
                    *shard,
                ],
                cwd=REPO,
                env=env,
                stdout=subprocess.DEVNULL,
            )
        )
    codes = [p.wait() for p in procs]
    if any(codes):
        raise SystemExit(f"a worker failed: exit codes {codes}")
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--limit", type=int, default=64)
    parser.add_argument("--run-seconds", default="0", help="sandbox task duration, e.g. 0 or 1-2")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (1, args.workers):
            sandbox, base, socket = start_sandbox(args.limit, args.run_seconds)
            try:
                env = {
                    **os.environ,
                    "WIRO_API_KEY": "sandbox-key",
                    "WIRO_API_SECRET": "sandbox-secret",
                    "WIRO_API_BASE": base,
                    "WIRO_SOCKET_URL": socket,
                }
                manifest = Path(tmp) / f"m{workers}.yaml"
                write_manifest(manifest, args.jobs, f"w{workers}")
                conc = max(1, -(-args.limit // workers))
                wall = run_workers(manifest, Path(tmp) / f"out{workers}", env, workers, conc)
                figures = stats(base)
                rows.append(
                    (workers, conc, wall, figures["duplicate_tasks"], figures["max_in_flight"])
                )
            finally:
                sandbox.terminate()
                sandbox.wait()
    print(f"cores: {os.cpu_count()}; jobs: {args.jobs}; account limit: {args.limit}; "
          f"task run seconds: {args.run_seconds}")  # fmt: skip
    header = ("workers", "conc/worker", "wall s", "jobs/s", "dupes", "max in flight")
    print(" ".join(f"{h:>13}" for h in header))
    for workers, conc, wall, dupes, peak in rows:
        cells = (workers, conc, f"{wall:.1f}", f"{args.jobs / wall:.1f}", dupes, peak)
        print(" ".join(f"{c!s:>13}" for c in cells))


if __name__ == "__main__":
    main()
