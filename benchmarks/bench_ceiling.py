"""Ceiling: the runner's jobs/s against a minimal raw aiohttp loop, and uvloop vs asyncio.

    python benchmarks/bench_ceiling.py [--jobs 5000] [--concurrency 128] [--repeat 3]

The raw loop is the physical limit of this machine for this protocol: per job the same
requests the runner sends (a signed multipart ``/Run``, ``/Task/Detail`` until terminal,
a GET of the output written to a file) from ``concurrency`` workers on one connection
pool, with no ledger, no fsync, no hashing, no retries, no WebSocket. Sandbox: a separate
process, near-instant tasks (``--run-seconds 0 --queue-seconds 0``), a fresh one for every
measurement with the same seed, so every contender sees the same job set and service.

The runner runs with each event loop (``BATCH_RUNNER_LOOP=asyncio`` and ``=uvloop``); the
ratio to the ceiling uses the CLI's default loop, and uvloop / asyncio shows what the
optional dependency buys. The raw loop uses uvloop when installed (the best case).
Rounds are interleaved (raw, runner asyncio, runner uvloop; ``--repeat`` times) and the
median of each is shown, as other load on a small machine moves single runs by 10-20 %.
Contenders are timed as whole processes (start-up, reading the jobs, the loop, exit);
jobs/s = jobs / process wall time. CPU s/job is the client process's user+system time.

``raw`` is the child mode the benchmark starts (it reads WIRO_* from the environment).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    PY,
    ROOT,
    Figure,
    Report,
    SandboxProcess,
    banner,
    check,
    check_same_inputs,
    cores,
    count_files,
    engine_wall,
    measure,
    rel,
    runner_cmd,
    show,
    workdir,
    write_jobs_jsonl,
    write_manifest,
)

TERMINAL = frozenset({"task_postprocess_end", "task_cancel", "task_error", "task_error_full"})
MODEL = "PixVerse/image-to-video-v5"


# --- the raw loop (child process) ------------------------------------------------------------


async def raw_loop(jobs_file: Path, out_dir: Path, concurrency: int, poll: float) -> dict:
    import aiohttp

    key = os.environ["WIRO_API_KEY"]
    secret = os.environ.get("WIRO_API_SECRET") or None
    base = os.environ["WIRO_API_BASE"].rstrip("/")
    jobs = [json.loads(line) for line in jobs_file.read_text("utf-8").splitlines() if line]
    out_dir.mkdir(parents=True, exist_ok=True)
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

    counts = {"run": 0, "detail": 0, "download": 0, "failed": 0}
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
                    body = await post(f"{base}/Task/Detail", json={"taskid": run["taskid"]})
                    counts["detail"] += 1
                    task = body["tasklist"][0]
                    if task["status"] in TERMINAL:
                        break
                    await asyncio.sleep(poll)
                if task["status"] != "task_postprocess_end" or task.get("pexit") != "0":
                    counts["failed"] += 1
                    continue
                for n, output in enumerate(task["outputs"]):
                    async with session.get(output["url"]) as resp:
                        data = await resp.read()
                    name = f"{job['id']}.mp4" if n == 0 else f"{job['id']}-{n}.mp4"
                    with open(out_dir / name, "wb") as fh:
                        fh.write(data)
                    counts["download"] += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {"jobs": len(jobs), "loop_seconds": time.perf_counter() - started, **counts}


def raw_main(args: argparse.Namespace) -> None:
    coro = raw_loop(Path(args.jobs_file), Path(args.out), args.concurrency, args.poll)
    if os.environ.get("BATCH_RUNNER_LOOP", "").lower() == "asyncio" or not have_uvloop():
        result = asyncio.run(coro)
    else:
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            result = runner.run(coro)
    print(json.dumps(result))


# --- the benchmark ---------------------------------------------------------------------------


def raw_cmd(jobs_file: Path, out: Path, concurrency: int) -> list[str]:
    return [PY, str(Path(__file__)), "raw", "--jobs-file", str(jobs_file), "--out", str(out),
            "--concurrency", str(concurrency)]  # fmt: skip


def contender(
    name: str, cmd: list[str], env_extra: dict[str, str], folder: Path, jobs: int
) -> dict:
    """One measurement against a fresh sandbox; returns figures for the table."""
    with SandboxProcess(log=folder / f"sandbox-{name}.log") as sb:
        env = sb.env(**env_extra)
        banner(f"ceiling: {name}: {show(cmd, env)}")
        m = measure(cmd, env=env, log=folder / f"{name}.log", sandbox=sb)
        check(m, name)
        stats = sb.stats()
    out = Path(cmd[cmd.index("--out") + 1])
    done = count_files(out)
    if done != jobs:
        raise RuntimeError(f"{name}: {done} of {jobs} outputs saved")
    return {
        "name": name, "command": show(cmd, env), "sandbox": sb.command, "jobs": jobs,
        "wall": m.wall, "jobs_per_s": jobs / m.wall, "cpu": m.cpu, "cpu_per_job": m.cpu / jobs,
        "rss_mb": m.rss_mb, "engine_wall": engine_wall(m), "sandbox_cpu": sb.cpu,
        "requests": stats.get("requests", {}), "max_in_flight": stats.get("max_in_flight"),
        "other_load": m.other_load,
    }  # fmt: skip


def _median(runs: list[dict]) -> dict:
    """The run with the median jobs/s (an odd number of runs gives a real run's figures)."""
    ordered = sorted(runs, key=lambda r: r["jobs_per_s"])
    return ordered[len(ordered) // 2]


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


def have_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def run(
    jobs: int,
    concurrency: int,
    base: Path | None,
    both_loops: bool = True,
    repeat: int = 3,
) -> Report:
    report = Report()
    here = rel(__file__)
    self_cmd = f"python {here} --jobs {jobs} --concurrency {concurrency} --repeat {repeat}"
    report.bench_cmd = self_cmd
    default = default_loop()
    loops = ["asyncio", "uvloop"] if both_loops and have_uvloop() else [default]
    names = ["raw", *(f"runner_{loop}" for loop in loops)]
    runs: dict[str, list[dict]] = {name: [] for name in names}
    with workdir(base, "ceiling") as folder:
        manifest = write_manifest(folder / "ceiling.yaml", jobs, tag="ceiling")
        jobs_file = write_jobs_jsonl(folder / "ceiling.jsonl", jobs, tag="ceiling")
        check_same_inputs(manifest, jobs_file)
        # Interleaved rounds, so that other load on the machine hits every contender alike.
        for n in range(repeat):
            for name in names:
                out = folder / f"{name}-out-{n}"
                if name == "raw":
                    cmd, extra = raw_cmd(jobs_file, out, concurrency), {}
                else:
                    cmd = runner_cmd(manifest, out, concurrency)
                    extra = {"BATCH_RUNNER_LOOP": name.removeprefix("runner_")}
                runs[name].append(contender(name, cmd, extra, folder, jobs))
                shutil.rmtree(out, ignore_errors=True)
    rows = {name: _median(found) for name, found in runs.items()}
    for name, found in runs.items():
        rows[name]["all_jobs_per_s"] = [round(r["jobs_per_s"], 1) for r in found]
        report.other_load = max(report.other_load, *(r["other_load"] for r in found))
    for row in rows.values():
        report.commands += [row["sandbox"], row["command"]]
    report.raw = {"median": rows, "runs": runs, "default_loop": default}
    raw, runner = rows["raw"], rows[f"runner_{default}"]
    ratio = runner["jobs_per_s"] / raw["jobs_per_s"]
    of = f"median of {repeat}: " if repeat > 1 else ""

    def spread(row: dict) -> str:
        return f"runs {row['all_jobs_per_s']} jobs/s; " if repeat > 1 else ""

    def cpu(row: dict) -> str:
        return f"{row['cpu_per_job'] * 1000:.2f} ms CPU/job"

    note = f"{jobs} near-instant jobs, concurrency {concurrency}"
    raw_loop_name = "uvloop" if have_uvloop() else "asyncio"
    report.add(
        Figure("ceiling", f"raw aiohttp loop ({raw_loop_name})", raw["jobs_per_s"], "jobs/s",
               command=raw["command"], note=f"{note}; {of}{spread(raw)}{cpu(raw)}"),
        Figure("ceiling", f"runner, default loop ({default})", runner["jobs_per_s"], "jobs/s",
               command=runner["command"],
               note=f"{of}{spread(runner)}{cpu(runner)}, peak RSS {runner['rss_mb']:.0f} MB, "
               f"engine wall {runner['engine_wall']} s"),
        Figure("ceiling", "runner / raw ceiling", ratio, "x", "≥ 0.7x", ratio >= 0.7,
               command=self_cmd),
    )  # fmt: skip
    if len(loops) == 2:
        other = "uvloop" if default == "asyncio" else "asyncio"
        row = rows[f"runner_{other}"]
        fast, slow = rows["runner_uvloop"], rows["runner_asyncio"]
        gain = fast["jobs_per_s"] / slow["jobs_per_s"]
        cpu_gain = slow["cpu_per_job"] / fast["cpu_per_job"]
        pairs = ", ".join(
            f"{u['jobs_per_s'] / a['jobs_per_s']:.2f}"
            for u, a in zip(runs["runner_uvloop"], runs["runner_asyncio"], strict=True)
        )
        report.add(
            Figure("uvloop", f"runner, BATCH_RUNNER_LOOP={other}", row["jobs_per_s"], "jobs/s",
                   command=row["command"], note=f"{of}{spread(row)}{cpu(row)}"),
            Figure("uvloop", "uvloop / asyncio, jobs/s", gain, "x", command=self_cmd,
                   note=f"medians; per round: {pairs}; CPU per job {cpu_gain:.2f}x lower "
                   "with uvloop"),
        )  # fmt: skip
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode")
    raw = sub.add_parser("raw", help="child: the raw loop itself")
    raw.add_argument("--jobs-file", required=True)
    raw.add_argument("--out", required=True)
    raw.add_argument("--concurrency", type=int, default=128)
    raw.add_argument("--poll", type=float, default=0.05)
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=128)
    parser.add_argument(
        "--default-loop-only", action="store_true",
        help="run the runner with its default event loop only (no uvloop/asyncio comparison)",
    )  # fmt: skip
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds (median)")
    parser.add_argument("--workdir", type=Path, help="keep the work files here")
    args = parser.parse_args()
    if args.mode == "raw":
        raw_main(args)
        return
    report = run(args.jobs, args.concurrency, args.workdir, not args.default_loop_only, args.repeat)
    print(f"cores: {cores()}")
    for f in report.figures:
        print(f"{f.name:28} {f.text():>14}  {f.note}")
    print(json.dumps(report.raw, indent=1))


if __name__ == "__main__":
    main()
