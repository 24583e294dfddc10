"""Slot utilisation: do the paid slots sit idle, and how many status requests does a task cost?

    python benchmarks/bench_slots.py [--jobs 400] [--concurrency 40] [--run-seconds 2-6]

The runner (the real CLI, in its own process) runs ``--jobs`` jobs whose tasks last
``--run-seconds`` (uniform, the sandbox's seeded draw, no queue time) at ``--concurrency``,
once with push (the default WebSocket feed) and once with ``--no-socket`` (adaptive polling
only). Each mode gets a fresh sandbox process with the same seed, so both see the same
sequence of task durations. From the sandbox's task records:

* utilisation = sum of task service time (end - create) / (concurrency x runner wall time),
  the runner's wall time being its whole process, start-up and exit included;
* the ideal for the same durations: the same sum over concurrency x the makespan of a
  scheduler with zero overhead (list scheduling in creation order); the gap to 100 % is the
  tail of the last tasks, which no client can avoid;
* steady-state occupancy: the average number of tasks in flight / concurrency between the
  first and the last submission (no tail);
* detection lag = the first ``/Task/Detail`` after the task ended - its end (the runner asks
  for the canonical record right after it learns the task is done), p50 / p99 / max;
* status requests per task = ``/Task/Detail`` requests / tasks.
"""

from __future__ import annotations

import heapq
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Figure, Report, bench_parser, count_files, percentile, print_report, rel, workdir
from jobsets import engine_wall, runner_cmd, write_manifest
from servers import against


def ideal_makespan(durations: list[float], concurrency: int) -> float:
    """Makespan of list scheduling with no overhead: each job starts when a slot frees."""
    slots = [0.0] * min(concurrency, len(durations))
    heapq.heapify(slots)
    end = 0.0
    for d in durations:
        start = heapq.heappop(slots)
        end = max(end, start + d)
        heapq.heappush(slots, start + d)
    return end


def steady_occupancy(tasks: list[dict], concurrency: int) -> float:
    """Mean tasks in flight / concurrency between the first and the last creation."""
    first = min(t["create_ts"] for t in tasks)
    last = max(t["create_ts"] for t in tasks)
    if last <= first:
        return 1.0
    busy = 0.0
    for t in tasks:
        lo, hi = t["create_ts"], min(t["end_ts"], last)
        busy += max(0.0, hi - lo)
    return busy / (concurrency * (last - first))


def one_mode(
    mode: str, manifest: Path, folder: Path, jobs: int, concurrency: int,
    run_seconds: tuple[float, float],
) -> dict:  # fmt: skip
    extra = ["--no-socket"] if mode == "poll" else []
    out = folder / f"out-{mode}"
    cmd = runner_cmd(manifest, out, concurrency, *extra)
    row, m = against(f"slots-{mode}", cmd, folder, jobs, server="sandbox",
                     server_options={"run_seconds": run_seconds},
                     after=lambda sb: sb.tasks())  # fmt: skip
    tasks, stats = row["after"], row["stats"]
    if len(tasks) != jobs or count_files(out) != jobs:
        raise RuntimeError(f"slots {mode}: {len(tasks)} tasks, {count_files(out)} outputs")
    service = [t["end_ts"] - t["create_ts"] for t in tasks]
    total_service = sum(service)
    lags = [
        t["first_detail_after_end_ts"] - t["end_ts"]
        for t in tasks
        if t["first_detail_after_end_ts"] is not None
    ]
    details = sum(t["detail_requests"] for t in tasks)
    makespan = ideal_makespan(
        [t["end_ts"] - t["create_ts"] for t in sorted(tasks, key=lambda t: t["create_ts"])],
        concurrency,
    )
    engine = engine_wall(m)
    return {
        "mode": mode, "command": row["command"], "server": row["server"], "wall": m.wall,
        "engine_wall": engine, "cpu": m.cpu, "rss_mb": m.rss_mb,
        "service_sum": total_service,
        "utilisation": total_service / (concurrency * m.wall),
        "utilisation_engine": total_service / (concurrency * engine) if engine else None,
        "ideal_utilisation": total_service / (concurrency * makespan),
        "ideal_wall": makespan,
        "steady_occupancy": steady_occupancy(tasks, concurrency),
        "lag_p50": percentile(lags, 50), "lag_p99": percentile(lags, 99),
        "lag_max": max(lags) if lags else None, "lag_count": len(lags),
        "detail_per_task": details / len(tasks),
        "requests": stats.get("requests", {}),
        "ws_frames_sent": stats.get("ws_frames_sent"),
        "max_in_flight": stats.get("max_in_flight"),
        "other_load": m.other_load,
    }  # fmt: skip


def run(jobs: int, concurrency: int, run_seconds: tuple[float, float], base: Path | None) -> Report:
    report = Report()
    low, high = run_seconds
    self_cmd = (
        f"python {rel(__file__)} --jobs {jobs} --concurrency {concurrency} "
        f"--run-seconds {low:g}-{high:g}"
    )
    report.bench_cmd = self_cmd
    rows = {}
    with workdir(base, "slots") as folder:
        manifest = write_manifest(folder / "slots.yaml", jobs, tag="slots")
        for mode in ("push", "poll"):
            rows[mode] = one_mode(mode, manifest, folder, jobs, concurrency, run_seconds)
    report.raw = rows
    for row in rows.values():
        report.commands += [row["server"], row["command"]]
        report.other_load = max(report.other_load, row["other_load"])
    for mode, row in rows.items():
        label = "push" if mode == "push" else "polling only"
        util_ok = row["utilisation"] >= 0.97 if mode == "push" else None
        lag_ok = row["lag_p99"] < 0.5 if mode == "push" else None
        det_ok = row["detail_per_task"] <= 2 if mode == "push" else None
        note = (
            f"{jobs} jobs of {low:g}-{high:g} s at concurrency {concurrency}; ideal for these "
            f"durations {row['ideal_utilisation'] * 100:.1f} %, steady-state occupancy "
            f"{row['steady_occupancy'] * 100:.1f} %, wall {row['wall']:.1f} s "
            f"(ideal {row['ideal_wall']:.1f} s)"
        )
        report.add(
            Figure("slots", f"utilisation, {label}", row["utilisation"] * 100, "%",
                   "≥ 97 % (push)" if mode == "push" else "", util_ok, row["command"], note),
            Figure("slots", f"detection lag p50, {label}", row["lag_p50"], "s",
                   command=row["command"]),
            Figure("slots", f"detection lag p99, {label}", row["lag_p99"], "s",
                   "< 0.5 s (push)" if mode == "push" else "", lag_ok, row["command"],
                   f"max {row['lag_max']:.3f} s"),
            Figure("slots", f"status requests/task, {label}", row["detail_per_task"], "",
                   "≤ 2 (push)" if mode == "push" else "", det_ok, row["command"]),
        )  # fmt: skip
    return report


def _seconds(text: str) -> tuple[float, float]:
    low, _, high = text.partition("-")
    return float(low), float(high or low)


def main() -> None:
    parser = bench_parser(__doc__, jobs=400, concurrency=40)
    parser.add_argument("--run-seconds", type=_seconds, default=(2.0, 6.0), metavar="A-B")
    args = parser.parse_args()
    report = run(args.jobs, args.concurrency, args.run_seconds, args.workdir)
    print_report(report, raw=args.json)


if __name__ == "__main__":
    main()
