"""Ledger benchmark: record cost at 100 vs 100,000 jobs, snapshot cost, open/replay time.

    python benchmarks/bench_ledger.py [--events 120000] [--writers 256] [--repeat 3] [--dir /tmp]

Why these figures: issue 6 asks that recording an event costs the same at 100 and 100,000 jobs
(group commit, amortised compaction) and that a finished 100,000-job ledger opens in < 3 s.
The concurrent phase uses enough events that the 100,000-job ledger compacts at least once, so
the snapshot's amortised cost is inside the figure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from batch_runner.ledger.events import (
    JobRegistered,
    SavedOutput,
    SubmitIntent,
    Submitted,
    TaskStatusSeen,
)
from batch_runner.ledger.state import JobRecord, JobStatus, LedgerState
from batch_runner.ledger.store import (
    JOURNAL_NAME,
    SNAPSHOT_NAME,
    Ledger,
    encode_line,
    encode_snapshot,
    read_ledger,
    snapshot_payload,
)

SHA = "0123456789abcdef" * 4


async def prepare(directory: Path, jobs: int) -> None:
    """A ledger of ``jobs`` running tasks, closed cleanly."""
    ledger = Ledger.open(directory)
    for i in range(jobs):
        job = f"job-{i:06d}"
        await ledger.record(JobRegistered(job=job, fingerprint="f" * 16), durable=False)
        await ledger.record(SubmitIntent(job=job, attempt=1, fingerprint="f" * 16), durable=False)
        await ledger.record(Submitted(job=job, taskid=f"{i}", tasktoken="t" * 32), durable=False)
    await ledger.close()


async def measure(directory: Path, jobs: int, events: int, writers: int) -> dict[str, float]:
    started = time.perf_counter()
    ledger = Ledger.open(directory)
    opened = time.perf_counter() - started

    t0 = time.perf_counter()
    sequential = 500
    for n in range(sequential):
        await ledger.record(TaskStatusSeen(job=f"job-{n % jobs:06d}", status=f"s{n % 2}"))
    seq_rate = sequential / (time.perf_counter() - t0)

    before = ledger.stats
    per_writer = events // writers

    async def writer(w: int) -> None:
        for n in range(per_writer):
            job = f"job-{(w * per_writer + n) % jobs:06d}"
            await ledger.record(TaskStatusSeen(job=job, status=f"task_{n % 3}"))

    t0 = time.perf_counter()
    await asyncio.gather(*(writer(w) for w in range(writers)))
    elapsed = time.perf_counter() - t0
    after = ledger.stats
    t0 = time.perf_counter()
    await ledger.close()
    closed = time.perf_counter() - t0
    done = per_writer * writers
    return {
        "open_s": opened,
        "seq_rate": seq_rate,
        "rate": done / elapsed,
        "us_per_event": elapsed / done * 1e6,
        "fsyncs": after.fsyncs - before.fsyncs,
        "per_fsync": done / max(after.fsyncs - before.fsyncs, 1),
        "snapshots": after.snapshots - before.snapshots,
        "close_s": closed,
        "events": done,
    }


def finished_ledger(directory: Path, jobs: int) -> dict[str, float]:
    """Snapshot write, open and replay times for a finished ledger of ``jobs`` jobs."""
    state = LedgerState()
    for i in range(jobs):
        job = f"job-{i:06d}"
        state.jobs[job] = JobRecord(
            job_id=job, status=JobStatus.SUCCEEDED, fingerprint="f" * 16, attempts=1,
            taskid=str(i), tasktoken="t" * 32, marker=f"m-{i}", service_status="task_start",
            cost=0.05, outputs=(SavedOutput("out.mp4", f"{job}.mp4", 2_000_000, SHA),),
            created_at=1.7e9, submitted_at=1.7e9, finished_at=1.7e9, updated_at=1.7e9,
        )  # fmt: skip
    state.seq = jobs * 7
    state.recount()
    t0 = time.perf_counter()
    data = encode_snapshot(snapshot_payload(state))
    encoded = time.perf_counter() - t0
    directory.mkdir()
    (directory / SNAPSHOT_NAME).write_bytes(data)
    os.chmod(directory / SNAPSHOT_NAME, 0o600)
    t0 = time.perf_counter()
    ledger = Ledger.open(directory)
    opened = time.perf_counter() - t0
    ledger.close_sync()
    t0 = time.perf_counter()
    read_ledger(directory)
    status = time.perf_counter() - t0
    # after kill -9: the snapshot plus one journal line per job to replay and fold in
    lines = (
        encode_line(state.seq + i + 1, TaskStatusSeen(job=f"job-{i:06d}", status="x"))
        for i in range(jobs)
    )
    (directory / JOURNAL_NAME).write_bytes(b"".join(lines))
    t0 = time.perf_counter()
    ledger = Ledger.open(directory)
    restored = time.perf_counter() - t0
    ledger.close_sync()
    return {
        "encode_s": encoded, "size_mb": len(data) / 1e6, "open_s": opened,
        "status_s": status, "restore_s": restored,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=120_000)
    parser.add_argument("--writers", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3, help="runs per size; the median is shown")
    parser.add_argument("--dir", default=None, help="where to write (default: a temp dir)")
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}, python {sys.version.split()[0]}, dir: {args.dir or 'tmp'}")
    rows = {}
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for jobs in (100, 100_000):
            directory = Path(tmp) / f"ledger-{jobs}"
            asyncio.run(prepare(directory, jobs))
            runs = [
                asyncio.run(measure(directory, jobs, args.events, args.writers))
                for _ in range(args.repeat)
            ]
            rows[jobs] = sorted(runs, key=lambda r: r["us_per_event"])[len(runs) // 2]
        finished = finished_ledger(Path(tmp) / "ledger-finished", 100_000)
    print(f"\nrecord(): {args.writers} concurrent writers, durable events, median of {args.repeat}")
    header = ("jobs", "events", "events/s", "us/event", "fsyncs", "ev/fsync", "snapshots",
              "seq ev/s", "open s", "close s")  # fmt: skip
    print("".join(f"{h:>11}" for h in header))
    for jobs, r in rows.items():
        values = (jobs, r["events"], f"{r['rate']:.0f}", f"{r['us_per_event']:.1f}", r["fsyncs"],
                  f"{r['per_fsync']:.0f}", r["snapshots"], f"{r['seq_rate']:.0f}",
                  f"{r['open_s']:.2f}", f"{r['close_s']:.2f}")  # fmt: skip
        print("".join(f"{v:>11}" for v in values))
    ratio = rows[100_000]["us_per_event"] / rows[100]["us_per_event"]
    print(f"record cost ratio 100,000 vs 100 jobs: {ratio:.2f}x")
    print("\nfinished 100,000-job ledger")
    print(f"  snapshot encode     {finished['encode_s']:.2f} s, {finished['size_mb']:.1f} MB")
    print(f"  Ledger.open         {finished['open_s']:.2f} s   (target < 3 s)")
    print(f"  read_ledger/status  {finished['status_s']:.2f} s")
    print(f"  open after kill -9  {finished['restore_s']:.2f} s   (+100,000 journal lines)")


if __name__ == "__main__":
    main()
