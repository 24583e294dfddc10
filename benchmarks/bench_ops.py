"""Operator features: upload throughput to a local S3, and what metrics cost at scale.

    python benchmarks/bench_ops.py                 # every figure below (about a minute)
    python benchmarks/bench_ops.py --only upload   # or: --only run, --only metrics

* upload: files through the publisher's own path (probe, upload in parts above 8 MiB,
  check) to moto's S3 server on loopback, ``--publish-concurrency`` files at once; MB/s and
  objects/s. moto is a Python server in this process' threads: the figure is a floor set by
  moto, not by the runner (a real bucket is usually faster per byte, slower per request).
* run: the real CLI on sandbox jobs with and without ``--publish``: the wall time publishing
  adds per job (small outputs: request-bound).
* metrics: one ``MetricsFile.update`` (the reporter's cost per count snapshot), one file
  rewrite (render + temp file + fsync + rename), and the end-of-run publish figures over a
  ledger of 10,000 and 100,000 succeeded jobs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def upload(files: int, size_mib: int, concurrency: int) -> None:
    from s3help import local_s3

    from batch_runner.engine.objstore import open_target, stat, upload_verified

    with local_s3() as s3, tempfile.TemporaryDirectory() as tmp:
        bucket = s3.bucket("bench")
        data = os.urandom(size_mib * 2**20)
        sha = hashlib.sha256(data).hexdigest()
        paths = []
        for n in range(files):
            path = Path(tmp) / f"f{n:04d}.mp4"
            path.write_bytes(data)
            paths.append(path)
        os.environ.update(s3.env())
        target = open_target(f"s3://{bucket}/bench")

        async def one(path: Path, gate: asyncio.Semaphore) -> None:
            async with gate:
                assert await stat(target, path.name) is None
                await upload_verified(
                    target, path.name, path, size=len(data), sha256=sha, part_size=8 * 2**20
                )

        async def main() -> float:
            gate = asyncio.Semaphore(concurrency)
            began = time.perf_counter()
            await asyncio.gather(*(one(p, gate) for p in paths))
            return time.perf_counter() - began

        seconds = asyncio.run(main())
        total = files * size_mib
        print(
            f"upload  {files} x {size_mib} MiB at concurrency {concurrency}: {seconds:.2f} s, "
            f"{total / seconds:.1f} MiB/s, {files / seconds:.1f} objects/s"
        )
        assert len(s3.versions(bucket)) == files


def run(jobs: int) -> None:
    from s3help import local_s3

    with local_s3() as s3, tempfile.TemporaryDirectory() as tmp:
        bucket = s3.bucket("run")
        from clihelp import write_manifest

        manifest = write_manifest(Path(tmp) / "m.yaml", jobs)
        # The sandbox runs in its own process; the runner is the real CLI.
        sandbox = subprocess.Popen(
            [sys.executable, "-m", "batch_runner", "sandbox", "--port", "0", "--run-seconds",
             "0", "--queue-seconds", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        try:
            base, socket_url = _sandbox_urls(sandbox)
            env = {**os.environ, **s3.env(), "WIRO_API_BASE": base, "WIRO_SOCKET_URL": socket_url,
                   "WIRO_API_KEY": "sandbox-key", "WIRO_API_SECRET": "sandbox-secret",
                   "PYTHONPATH": str(ROOT)}  # fmt: skip
            walls = {}
            for name, extra in (("plain", []), ("publish", ["--publish", f"s3://{bucket}/r"])):
                out = Path(tmp) / name
                cmd = [sys.executable, "-m", "batch_runner", "run", str(manifest), "--out",
                       str(out), "--concurrency", "32", "-q", *extra]  # fmt: skip
                began = time.perf_counter()
                done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
                walls[name] = time.perf_counter() - began
                assert done.returncode == 0, done.stderr
            extra_ms = (walls["publish"] - walls["plain"]) / jobs * 1000
            print(
                f"run     {jobs} sandbox jobs: {walls['plain']:.1f} s plain, "
                f"{walls['publish']:.1f} s with --publish ({extra_ms:+.1f} ms per job; "
                f"{len(s3.versions(bucket))} objects)"
            )
        finally:
            sandbox.terminate()
            sandbox.wait()


def _sandbox_urls(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """(base_url, socket_url) from the sandbox's "ready" line."""
    assert proc.stdout is not None
    for line in proc.stdout:
        found = dict(w.split("=", 1) for w in line.split() if "=" in w)
        if "base_url" in found and "socket_url" in found:
            return found["base_url"], found["socket_url"]
    raise RuntimeError("the sandbox printed no address")


def metrics() -> None:
    from batch_runner.ledger.events import PublishedOutput, SavedOutput
    from batch_runner.ledger.published import figures
    from batch_runner.ledger.state import JobRecord, JobStatus, LedgerState, counts_by_status
    from batch_runner.report.metrics import MetricsFile

    for jobs in (10_000, 100_000):
        state = LedgerState()
        for n in range(jobs):
            path = f"job-{n:06d}.mp4"
            saved = SavedOutput("0.mp4", path, 23_617, "ab" * 32)
            entry = PublishedOutput("0.mp4", path, f"s3://b/p/{path}", 23_617, "ab" * 32, '"e"')
            state.jobs[path] = JobRecord(
                path, JobStatus.SUCCEEDED, "fp", outputs=(saved,), published=(entry,)
            )
        state.recount()
        with tempfile.TemporaryDirectory() as tmp:
            m = MetricsFile(Path(tmp) / "batch.prom", labels={"batch": "bench"}, interval=1e9)
            counts = counts_by_status(state)
            rounds = 20_000
            began = time.perf_counter()
            for _ in range(rounds):
                m.update(counts, total=jobs, spent=123.4)
            update_us = (time.perf_counter() - began) / rounds * 1e6
            writes = 200
            began = time.perf_counter()
            for _ in range(writes):
                m.write()
            write_ms = (time.perf_counter() - began) / writes * 1000
            began = time.perf_counter()
            fig = figures(state, "s3://b/p")
            figures_ms = (time.perf_counter() - began) * 1000
            assert fig.published_jobs == jobs
        print(
            f"metrics {jobs:,} jobs: update {update_us:.2f} us, file rewrite {write_ms:.2f} ms "
            f"(fsync'd), end-of-run publish figures {figures_ms:.0f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=("upload", "run", "metrics"))
    parser.add_argument("--jobs", type=int, default=300, help="sandbox jobs for 'run'")
    args = parser.parse_args()
    chosen = args.only or ["upload", "run", "metrics"]
    print(f"{os.cpu_count()} cores, Python {sys.version.split()[0]}")
    with contextlib.suppress(KeyboardInterrupt):
        if "upload" in chosen:
            upload(files=200, size_mib=1, concurrency=4)
            upload(files=8, size_mib=32, concurrency=4)
        if "run" in chosen:
            run(args.jobs)
        if "metrics" in chosen:
            metrics()


if __name__ == "__main__":
    main()
