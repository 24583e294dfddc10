"""Slot utilisation and tracking: do the paid slots sit idle, how soon is a finished task
seen, and how many status requests does a task cost?

    python benchmarks/bench_slots.py [--jobs 400] [--concurrency 40] [--run-seconds 2-6]
                                     [--modes push,push-lost,poll]

The runner (the real CLI, in its own process) runs ``--jobs`` jobs whose tasks last
``--run-seconds`` (uniform, the sandbox's seeded draw, no queue time) at ``--concurrency``,
in each mode: ``push`` (the default WebSocket feed), ``push-lost`` (the same, against a
sandbox that never sends any task's final frames: ``--fault ws_final_withheld=1.0``; the
per-task watchdog and then polling must notice) and ``poll`` (``--no-socket``, polling
only). Each mode gets a fresh sandbox process with the same seed, so all see the same
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

The last table puts the three tracking modes side by side (lag p50 / p99, requests/task).
"""

from __future__ import annotations

import heapq
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    Figure,
    Report,
    banner,
    bench_parser,
    check,
    count_files,
    measure,
    percentile,
    print_report,
    rel,
    show,
    workdir,
)
from jobsets import engine_wall, runner_cmd, write_manifest
from servers import SandboxProcess, figures

#: mode -> (label, runner flags, sandbox flags)
MODES = {
    "push": ("push", (), ()),
    "push-lost": ("push, final frames lost", (), ("--fault", "ws_final_withheld=1.0")),
    "poll": ("polling only", ("--no-socket",), ()),
}


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


class _Sandbox(SandboxProcess):
    """The sandbox process with extra flags (a fault), otherwise as ``servers`` starts it."""

    def __init__(self, flags: tuple[str, ...], **options: object) -> None:
        super().__init__(**options)  # type: ignore[arg-type]
        self.cmd = [*self.cmd, *flags]


def one_mode(
    mode: str, manifest: Path, folder: Path, jobs: int, concurrency: int,
    run_seconds: tuple[float, float],
) -> dict:  # fmt: skip
    _label, runner_flags, sandbox_flags = MODES[mode]
    out = folder / f"out-{mode}"
    cmd = runner_cmd(manifest, out, concurrency, *runner_flags)
    name = f"slots-{mode}"
    server = _Sandbox(sandbox_flags, run_seconds=run_seconds, log=folder / f"sandbox-{name}.log")
    with server as sb:
        env = sb.env()
        banner(f"{name}: {show(cmd, env)}")
        m = measure(cmd, env=env, log=folder / f"{name}.log", server=sb)
        check(m, name)
        stats = sb.stats()
        tasks = sb.tasks()
    row = figures(name, cmd, env, m, sb, jobs, stats)
    log = (folder / f"{name}.log").read_text("utf-8", "replace")  # the runner's whole stderr
    tracking = [line.split("INFO  ", 1)[-1].split("WARNING ", 1)[-1]
                for line in log.splitlines() if "tracking by" in line]  # fmt: skip
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
        "detail_max": max(t["detail_requests"] for t in tasks),
        "tracking": tracking,
        "ws_upgrades": stats.get("ws_upgrades"),
        "ws_frames_sent": stats.get("ws_frames_sent"),
        "ws_frames_withheld": stats.get("ws_frames_withheld"),
        "max_in_flight": stats.get("max_in_flight"),
        "other_load": m.other_load, "concurrency": concurrency,
    }  # fmt: skip


def run(
    jobs: int, concurrency: int, run_seconds: tuple[float, float], base: Path | None,
    modes: tuple[str, ...] = tuple(MODES),
) -> Report:  # fmt: skip
    report = Report()
    low, high = run_seconds
    self_cmd = (
        f"python {rel(__file__)} --jobs {jobs} --concurrency {concurrency} "
        f"--run-seconds {low:g}-{high:g}"
    )
    if modes != tuple(MODES):
        self_cmd += f" --modes {','.join(modes)}"
    report.bench_cmd = self_cmd
    rows = {}
    with workdir(base, "slots") as folder:
        manifest = write_manifest(folder / "slots.yaml", jobs, tag="slots")
        for mode in modes:
            rows[mode] = one_mode(mode, manifest, folder, jobs, concurrency, run_seconds)
    report.raw = rows
    for row in rows.values():
        report.commands += [row["server"], row["command"]]
        report.other_load = max(report.other_load, row["other_load"])
    for mode, row in rows.items():
        report.add(*_figures(mode, row, jobs, run_seconds))
    return report


#: (utilisation, lag p99, requests/task) targets per mode; None: no target
_TARGETS: dict[str, tuple[float | None, float | None, float | None]] = {
    "push": (0.97, 0.5, 2.0),
    "push-lost": (None, 10.0, 4.0),
    "poll": (None, None, None),
}


def _figures(mode: str, row: dict, jobs: int, run_seconds: tuple[float, float]) -> list[Figure]:
    label = MODES[mode][0]
    util_t, lag_t, det_t = _TARGETS[mode]
    low, high = run_seconds
    note = (
        f"{jobs} jobs of {low:g}-{high:g} s at concurrency {row['concurrency']}; ideal for "
        f"these durations {row['ideal_utilisation'] * 100:.1f} %, steady-state occupancy "
        f"{row['steady_occupancy'] * 100:.1f} %, wall {row['wall']:.1f} s "
        f"(ideal {row['ideal_wall']:.1f} s)"
    )
    said = "; ".join(row["tracking"]) or "nothing said about tracking"
    return [
        Figure("slots", f"utilisation, {label}", row["utilisation"] * 100, "%",
               f"≥ {util_t * 100:.0f} %" if util_t else "",
               row["utilisation"] >= util_t if util_t else None, row["command"], note),
        Figure("slots", f"detection lag p50, {label}", row["lag_p50"], "s",
               command=row["command"]),
        Figure("slots", f"detection lag p99, {label}", row["lag_p99"], "s",
               f"≤ {lag_t:g} s" if lag_t else "",
               row["lag_p99"] <= lag_t if lag_t else None, row["command"],
               f"max {row['lag_max']:.3f} s; the log said: {said}"),
        Figure("slots", f"status requests/task, {label}", row["detail_per_task"], "",
               f"≤ {det_t:g}" if det_t else "",
               row["detail_per_task"] <= det_t if det_t else None, row["command"],
               f"at most {row['detail_max']} for one task; socket upgrades "
               f"{row['ws_upgrades']}, final frames withheld {row['ws_frames_withheld']}"),
    ]  # fmt: skip


def tracking_table(rows: dict[str, dict]) -> str:
    """The tracking modes side by side: lag p50 / p99 and status requests per task."""
    head = ("lag p50", "lag p99", "lag max")
    lines = [f"{'tracking mode':28}  " + "  ".join(f"{h:>9}" for h in head) + "  requests/task"]
    for mode, row in rows.items():
        lines.append(
            f"{MODES[mode][0]:28}  {row['lag_p50']:8.3f}s  {row['lag_p99']:8.3f}s  "
            f"{row['lag_max']:8.3f}s  {row['detail_per_task']:13.2f}"
        )
    return "\n".join(lines)


def _seconds(text: str) -> tuple[float, float]:
    low, _, high = text.partition("-")
    return float(low), float(high or low)


def _modes(text: str) -> tuple[str, ...]:
    modes = tuple(m.strip() for m in text.split(",") if m.strip())
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise ValueError(f"modes must be among {', '.join(MODES)}")
    return modes


def main() -> None:
    parser = bench_parser(__doc__, jobs=400, concurrency=40)
    parser.add_argument("--run-seconds", type=_seconds, default=(2.0, 6.0), metavar="A-B")
    parser.add_argument("--modes", type=_modes, default=tuple(MODES), metavar="M[,M...]",
                        help=f"which of {', '.join(MODES)} to run (default all)")  # fmt: skip
    args = parser.parse_args()
    report = run(args.jobs, args.concurrency, args.run_seconds, args.workdir, args.modes)
    print_report(report, raw=args.json)
    print()
    print(tracking_table(report.raw))


if __name__ == "__main__":
    main()
