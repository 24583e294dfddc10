"""Peer: the runner against GNU parallel + curl + jq, one process per job, polling every 1 s.

    python benchmarks/bench_peer.py [--jobs 500] [--concurrency 128]

``benchmarks/peer_parallel.sh`` is what users write today without this tool: GNU parallel
starts one shell per job, which signs each request with openssl (HMAC-SHA256 like the API
page), POSTs ``/Run`` with curl, polls ``/Task/Detail`` every second until the status is
terminal (jq reads each answer) and curls the output. Both contenders run the same jobs (the
JSON lines hold exactly the inputs the runner resolves from the manifest, checked), at the
same concurrency, each against a fresh sandbox process with near-instant tasks and the same
seed. jobs/s = jobs / process wall time; the peer's CPU is its whole process tree.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    BENCH,
    Figure,
    Report,
    SandboxProcess,
    banner,
    check,
    check_same_inputs,
    cores,
    count_files,
    measure,
    rel,
    runner_cmd,
    show,
    workdir,
    write_jobs_jsonl,
    write_manifest,
)

SCRIPT = BENCH / "peer_parallel.sh"


def contender(name: str, cmd: list[str], folder: Path, jobs: int, out: Path) -> dict:
    with SandboxProcess(log=folder / f"sandbox-{name}.log") as sb:
        env = sb.env()
        banner(f"peer: {name}: {show(cmd)}")
        m = measure(cmd, env=env, log=folder / f"{name}.log", sandbox=sb)
        check(m, name)
        stats = sb.stats()
    done = count_files(out)
    if done != jobs:
        raise RuntimeError(f"peer {name}: {done} of {jobs} outputs saved")
    return {
        "name": name, "command": show(cmd), "sandbox": sb.command, "wall": m.wall,
        "jobs_per_s": jobs / m.wall, "cpu": m.cpu, "cpu_per_job": m.cpu / jobs,
        "sandbox_cpu": sb.cpu, "requests": stats.get("requests", {}),
        "detail_per_task": stats.get("requests", {}).get("Task/Detail", 0) / jobs,
        "other_load": m.other_load,
    }  # fmt: skip


def run(jobs: int, concurrency: int, base: Path | None) -> Report:
    for tool in ("parallel", "curl", "jq", "openssl"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"the peer benchmark needs {tool} (Debian: apt-get install {tool})")
    report = Report()
    self_cmd = f"python {rel(__file__)} --jobs {jobs} --concurrency {concurrency}"
    report.bench_cmd = self_cmd
    with workdir(base, "peer") as folder:
        manifest = write_manifest(folder / "peer.yaml", jobs, tag="peer")
        jobs_file = write_jobs_jsonl(folder / "peer.jsonl", jobs, tag="peer")
        check_same_inputs(manifest, jobs_file)
        peer_out = folder / "peer-out"
        peer_cmd = ["bash", str(SCRIPT), str(jobs_file), str(peer_out), str(concurrency)]
        runner_out = folder / "runner-out"
        rows = {
            "peer": contender("peer", peer_cmd, folder, jobs, peer_out),
            "runner": contender(
                "runner", runner_cmd(manifest, runner_out, concurrency), folder, jobs, runner_out
            ),
        }
    report.raw = rows
    for row in rows.values():
        report.commands += [row["sandbox"], row["command"]]
        report.other_load = max(report.other_load, row["other_load"])
    peer, runner = rows["peer"], rows["runner"]
    ratio = runner["jobs_per_s"] / peer["jobs_per_s"]
    note = f"{jobs} near-instant jobs, concurrency {concurrency}"
    report.add(
        Figure("peer", "GNU parallel + curl + jq", peer["jobs_per_s"], "jobs/s",
               command=peer["command"],
               note=f"{note}; {peer['cpu_per_job'] * 1000:.0f} ms CPU/job (process tree), "
               f"{peer['detail_per_task']:.1f} status requests/task"),
        Figure("peer", "runner, same jobs", runner["jobs_per_s"], "jobs/s",
               command=runner["command"],
               note=f"{runner['cpu_per_job'] * 1000:.2f} ms CPU/job"),
        Figure("peer", "runner / peer", ratio, "x", "≥ 10x", ratio >= 10, self_cmd),
    )  # fmt: skip
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=128)
    parser.add_argument("--workdir", type=Path, help="keep the work files here")
    args = parser.parse_args()
    report = run(args.jobs, args.concurrency, args.workdir)
    print(f"cores: {cores()}")
    for f in report.figures:
        print(f"{f.name:28} {f.text():>12}  {f.note}")
    print(json.dumps(report.raw, indent=1))


if __name__ == "__main__":
    main()
