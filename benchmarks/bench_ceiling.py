"""Ceiling: the runner's CPU per job against a raw aiohttp loop doing the same requests.

    python benchmarks/bench_ceiling.py [--jobs 3000] [--concurrency 128] [--repeat 3]
        [--server standin|sandbox] [--loops asyncio,uvloop] [--workers 1]

Why: the runner's cost per job only means something next to the least any client must
spend on the same protocol. The raw loop sends, per job, what the runner sends (a signed
multipart ``/Run``, ``/Task/Detail`` after the same first wait until terminal, a GET of
the output) from ``concurrency`` workers on one connection pool, and keeps nothing: no
ledger, no files, no hashing, no retries. The runner is the real CLI with
``--no-socket --poll-interval 0.05``. Both run against a fresh stand-in server
(``standin_server.py``, instant tasks, a few percent of the runner's CPU per task) in the
same benchmark run, in interleaved rounds; ``--server sandbox`` uses the package's sandbox.

Figures: jobs/s (jobs / the client's process wall time), CPU per job (the client's user +
system from its rusage, start-up included), peak RSS, the server's CPU per task and share
of a core, and which process was the bottleneck. A ratio from a round where the server was
saturated is marked and is not a figure of the runner. ``raw`` is the child mode (it reads
WIRO_* from the environment).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PY, ROOT, Figure, Report, bench_parser, count_files, print_report, rel, workdir
from jobsets import (
    FAST_POLL,
    MODEL,
    check_same_inputs,
    engine_wall,
    runner_cmd,
    write_jobs_jsonl,
    write_manifest,
)
from servers import against, describe

TERMINAL = frozenset({"task_postprocess_end", "task_cancel", "task_error"})
CPU_TARGET_MS = 1.0
RATIO_TARGET = 3.0
SERVER_TARGET_MS = 0.3


# --- the raw loop (child process) ------------------------------------------------------------


async def raw_loop(jobs_file: Path, concurrency: int, poll: float) -> dict:
    import aiohttp

    key = os.environ["WIRO_API_KEY"]
    secret = os.environ.get("WIRO_API_SECRET") or None
    base = os.environ["WIRO_API_BASE"].rstrip("/")
    jobs = [json.loads(line) for line in jobs_file.read_text("utf-8").splitlines() if line]
    last_nonce = 0

    def headers() -> dict[str, str]:
        nonlocal last_nonce
        h = {"x-api-key": key}
        if secret:
            last_nonce = max(time.time_ns() // 1000, last_nonce + 1)
            nonce = str(last_nonce)
            h["x-nonce"] = nonce
            h["x-signature"] = hmac.new(
                key.encode(), (secret + nonce).encode(), hashlib.sha256
            ).hexdigest()
        return h

    counts = {"run": 0, "detail": 0, "download": 0, "bytes": 0, "failed": 0}
    connector = aiohttp.TCPConnector(limit=concurrency * 2, limit_per_host=concurrency * 2)
    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=connector) as session:
        work = iter(jobs)

        async def post(url: str, **kwargs: object) -> dict:
            async with session.post(url, headers=headers(), **kwargs) as resp:  # type: ignore[arg-type]
                body = await resp.json(content_type=None)
                if resp.status != 200 or not body.get("result"):
                    raise RuntimeError(f"{url}: HTTP {resp.status} {body}")
                return body

        async def worker() -> None:
            for job in work:
                form = aiohttp.MultipartWriter("form-data")
                for name, value in job["inputs"].items():
                    form.append(value).set_content_disposition("form-data", name=name)
                run = await post(f"{base}/Run/{MODEL}", data=form)
                counts["run"] += 1
                while True:
                    await asyncio.sleep(poll)  # the runner's first check comes after this too
                    body = await post(f"{base}/Task/Detail", json={"taskid": run["taskid"]})
                    counts["detail"] += 1
                    task = body["tasklist"][0]
                    if task["status"] in TERMINAL:
                        break
                if task["status"] != "task_postprocess_end" or task.get("pexit") != "0":
                    counts["failed"] += 1
                    continue
                for output in task["outputs"]:
                    async with session.get(output["url"]) as resp:
                        counts["bytes"] += len(await resp.read())
                    counts["download"] += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {"jobs": len(jobs), "loop_seconds": time.perf_counter() - started, **counts}


def raw_main(args: argparse.Namespace) -> None:
    coro = raw_loop(Path(args.jobs_file), args.concurrency, args.poll)
    if os.environ.get("BATCH_RUNNER_LOOP", "asyncio").lower() == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            result = runner.run(coro)
    else:
        result = asyncio.run(coro)
    print(json.dumps(result))


# --- the benchmark ---------------------------------------------------------------------------


def raw_cmd(jobs_file: Path, concurrency: int, poll: float = 0.05) -> list[str]:
    return [PY, str(Path(__file__)), "raw", "--jobs-file", str(jobs_file),
            "--concurrency", str(concurrency), "--poll", f"{poll:g}"]  # fmt: skip


def default_loop() -> str:
    """The loop the CLI uses when BATCH_RUNNER_LOOP is not set ("asyncio" or "uvloop")."""
    sys.path.insert(0, str(ROOT))
    from batch_runner.engine.api import event_loop_factory

    saved = os.environ.pop("BATCH_RUNNER_LOOP", None)
    try:
        return "asyncio" if event_loop_factory() is None else "uvloop"
    finally:
        if saved is not None:
            os.environ["BATCH_RUNNER_LOOP"] = saved


def _median(rows: list[dict]) -> dict:
    """The round with the median CPU per job (an odd number of rounds: a real round)."""
    return sorted(rows, key=lambda r: r["cpu_per_job_ms"])[len(rows) // 2]


def one_round(
    n: int, loop: str, folder: Path, manifest: Path, jobs_file: Path, jobs: int,
    concurrency: int, server: str, workers: int,
) -> tuple[dict, dict]:  # fmt: skip
    options = {"workers": workers} if server == "standin" else {}
    env = {"BATCH_RUNNER_LOOP": loop}
    raw, m = against(f"raw-{loop}-{n}", raw_cmd(jobs_file, concurrency), folder, jobs,
                     server=server, env_extra=env, server_options=options)  # fmt: skip
    counts = json.loads(m.out.strip().splitlines()[-1])
    if counts["download"] != jobs or counts["failed"]:
        raise RuntimeError(f"raw loop: {counts}")
    raw["counts"] = counts
    out = folder / f"runner-{loop}-out-{n}"
    cmd = runner_cmd(manifest, out, concurrency, *FAST_POLL)
    runner, m = against(f"runner-{loop}-{n}", cmd, folder, jobs, server=server,
                        env_extra=env, server_options=options)  # fmt: skip
    if count_files(out) != jobs:
        raise RuntimeError(f"runner: {count_files(out)} of {jobs} outputs saved")
    runner["engine_wall"] = engine_wall(m)
    shutil.rmtree(out, ignore_errors=True)
    return raw, runner


def run(
    jobs: int = 3000,
    concurrency: int = 128,
    base: Path | None = None,
    repeat: int = 3,
    server: str = "standin",
    loops: tuple[str, ...] = (),
    workers: int = 1,
) -> Report:
    loops = loops or (default_loop(),)
    report = Report()
    report.bench_cmd = (
        f"python {rel(__file__)} --jobs {jobs} --concurrency {concurrency} --repeat {repeat} "
        f"--server {server} --loops {','.join(loops)}"
        + (f" --workers {workers}" if workers != 1 else "")
    )
    rounds: dict[str, list[tuple[dict, dict]]] = {loop: [] for loop in loops}
    with workdir(base, "ceiling") as folder:
        manifest = write_manifest(folder / "ceiling.yaml", jobs, tag="ceiling")
        jobs_file = write_jobs_jsonl(folder / "ceiling.jsonl", jobs, tag="ceiling")
        check_same_inputs(manifest, jobs_file)
        for n in range(repeat):  # interleaved: other load hits every contender alike
            for loop in loops:
                rounds[loop].append(
                    one_round(n, loop, folder, manifest, jobs_file, jobs, concurrency, server,
                              workers)
                )  # fmt: skip
    report.raw = {"rounds": rounds, "loops": list(loops), "server": server}
    every = [row for found in rounds.values() for pair in found for row in pair]
    report.other_load = max(r["other_load"] for r in every)
    report.commands += sorted({r["server"] for r in every}) + [r["command"] for r in every]
    of = f"median of {repeat} rounds; " if repeat > 1 else ""
    for loop, found in rounds.items():
        raw = _median([r for r, _ in found])
        runner = _median([r for _, r in found])
        ratios = [r["cpu_per_job_ms"] / w["cpu_per_job_ms"] for w, r in found]
        clean = [
            r["cpu_per_job_ms"] / w["cpu_per_job_ms"]
            for w, r in found
            if not (w["server_saturated"] or r["server_saturated"])
        ]
        tag = f" ({loop})"
        note = f"{jobs} instant jobs, concurrency {concurrency}, {server}; {of}"
        report.add(
            Figure("ceiling", f"raw aiohttp loop{tag}", raw["jobs_per_s"], "jobs/s",
                   command=raw["command"], note=note + describe(raw)),
            Figure("ceiling", f"runner{tag}", runner["jobs_per_s"], "jobs/s",
                   command=runner["command"], note=note + describe(runner)
                   + f"; engine wall {runner['engine_wall']} s"),
            Figure("ceiling", f"raw loop CPU per job{tag}", raw["cpu_per_job_ms"], "ms",
                   command=raw["command"],
                   note=f"user {raw['user']:.2f} s + system {raw['system']:.2f} s"),
            Figure("ceiling", f"runner CPU per job{tag}", runner["cpu_per_job_ms"], "ms",
                   f"≤ {CPU_TARGET_MS:g} ms", runner["cpu_per_job_ms"] <= CPU_TARGET_MS,
                   runner["command"],
                   f"user {runner['user']:.2f} s + system {runner['system']:.2f} s, "
                   f"peak RSS {runner['rss_mb']:.0f} MB"),
        )  # fmt: skip
        rounds_text = ", ".join(f"{x:.2f}" for x in ratios)
        if clean:
            ratio = statistics.median(clean)
            report.add(Figure(
                "ceiling", f"runner / raw loop, CPU per job{tag}", ratio, "x",
                f"≤ {RATIO_TARGET:g}x", ratio <= RATIO_TARGET, report.bench_cmd,
                f"per round (same run): {rounds_text}"
                + ("" if len(clean) == len(ratios) else "; server-bound rounds left out"),
            ))  # fmt: skip
        else:
            report.add(Figure(
                "ceiling", f"runner / raw loop, CPU per job{tag}: SERVER-BOUND", None, "x",
                f"≤ {RATIO_TARGET:g}x", None, report.bench_cmd,
                f"the server saturated in every round ({rounds_text}): not the runner's ratio",
            ))  # fmt: skip
        speed = runner["jobs_per_s"] / raw["jobs_per_s"]
        report.add(Figure("ceiling", f"runner / raw loop, jobs/s{tag}", speed, "x",
                          command=report.bench_cmd, note="medians"))  # fmt: skip
    per_task = [r["server_cpu_per_task_ms"] for r in every if r["server_cpu_per_task_ms"]]
    if per_task:
        worst = max(per_task)
        fastest = max(r["jobs_per_s"] for r in every)
        capacity = workers / worst * 1000  # jobs/s the server could answer on its cores
        busiest = max(every, key=lambda r: r["server_cores"] / r["server_workers"])
        report.add(
            Figure("ceiling", f"{server} CPU per task (worst contender)", worst, "ms",
                   f"< {SERVER_TARGET_MS:g} ms" if server == "standin" else "",
                   worst < SERVER_TARGET_MS if server == "standin" else None,
                   busiest["server"],
                   f"busiest: {busiest['server_cores'] * 100:.0f} % of "
                   f"{busiest['server_workers']} core(s) during {busiest['name']}"),
            Figure("ceiling", f"{server} headroom: capacity / fastest client", capacity / fastest,
                   "x", "≥ 3x", capacity / fastest >= 3, report.bench_cmd,
                   f"{capacity:,.0f} tasks/s at 100 % of {workers} core(s) (from its CPU per "
                   f"task) vs {fastest:,.0f} jobs/s of the fastest client"),
        )  # fmt: skip
    return report


def main() -> None:
    parser = bench_parser(__doc__, jobs=3000, concurrency=128, server="standin")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds (median)")
    parser.add_argument(
        "--loops", default="",
        help="event loops for both contenders, e.g. asyncio,uvloop (default: the CLI's)",
    )  # fmt: skip
    parser.add_argument("--workers", type=int, default=1, help="stand-in processes")
    sub = parser.add_subparsers(dest="mode")
    raw = sub.add_parser("raw", help="child: the raw loop itself")
    raw.add_argument("--jobs-file", required=True)
    raw.add_argument("--concurrency", type=int, default=128)
    raw.add_argument("--poll", type=float, default=0.05)
    args = parser.parse_args()
    if args.mode == "raw":
        raw_main(args)
        return
    loops = tuple(x for x in args.loops.split(",") if x)
    report = run(args.jobs, args.concurrency, args.workdir, args.repeat, args.server, loops,
                 args.workers)  # fmt: skip
    print_report(report, raw=args.json)


if __name__ == "__main__":
    main()
