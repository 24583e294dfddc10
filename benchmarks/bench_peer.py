"""Peer: the runner against GNU parallel + curl + jq, one process per job, polling every 1 s.

    python benchmarks/bench_peer.py [--jobs 500] [--concurrency 128] [--server sandbox]

``benchmarks/peer_parallel.sh`` is what users write today without this tool: GNU parallel
starts one shell per job, which signs each request with openssl (HMAC-SHA256 like the API
page), POSTs ``/Run`` with curl, polls ``/Task/Detail`` every second until the status is
terminal (jq reads each answer) and curls the output. Both contenders run the same jobs (the
JSON lines hold exactly the inputs the runner resolves from the manifest, checked), at the
same concurrency, each against a fresh server process with near-instant tasks. jobs/s =
jobs / process wall time; the peer's CPU is its whole process tree.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    BENCH,
    Figure,
    Report,
    Skipped,
    bench_parser,
    count_files,
    print_report,
    rel,
    workdir,
)
from jobsets import check_same_inputs, runner_cmd, write_jobs_jsonl, write_manifest
from servers import against, describe

SCRIPT = BENCH / "peer_parallel.sh"


def run(
    jobs: int = 500, concurrency: int = 128, base: Path | None = None, server: str = "sandbox"
) -> Report:
    for tool in ("parallel", "curl", "jq", "openssl"):
        if shutil.which(tool) is None:
            raise Skipped(f"the peer benchmark needs {tool} (Debian: apt-get install {tool})")
    report = Report(
        bench_cmd=f"python {rel(__file__)} --jobs {jobs} --concurrency {concurrency} "
        f"--server {server}"
    )
    with workdir(base, "peer") as folder:
        manifest = write_manifest(folder / "peer.yaml", jobs, tag="peer")
        jobs_file = write_jobs_jsonl(folder / "peer.jsonl", jobs, tag="peer")
        check_same_inputs(manifest, jobs_file)
        rows = {}
        extra = ("--no-socket",) if server == "standin" else ()
        for name, out, cmd in (
            ("peer", folder / "peer-out",
             ["bash", str(SCRIPT), str(jobs_file), str(folder / "peer-out"), str(concurrency)]),
            ("runner", folder / "runner-out",
             runner_cmd(manifest, folder / "runner-out", concurrency, *extra)),
        ):  # fmt: skip
            rows[name], _ = against(name, cmd, folder, jobs, server=server)
            if count_files(out) != jobs:
                raise RuntimeError(f"peer {name}: {count_files(out)} of {jobs} outputs saved")
            detail = rows[name]["requests"].get("Task/Detail", 0)
            rows[name]["detail_per_task"] = detail / jobs
    report.raw = rows
    for row in rows.values():
        report.commands += [row["server"], row["command"]]
        report.other_load = max(report.other_load, row["other_load"])
    peer, runner = rows["peer"], rows["runner"]
    ratio = runner["jobs_per_s"] / peer["jobs_per_s"]
    note = f"{jobs} near-instant jobs, concurrency {concurrency}, {server}"
    report.add(
        Figure("peer", "GNU parallel + curl + jq", peer["jobs_per_s"], "jobs/s",
               command=peer["command"],
               note=f"{note}; {peer['cpu_per_job_ms']:.0f} ms CPU/job (process tree), "
               f"{peer['detail_per_task']:.1f} status requests/task"),
        Figure("peer", "runner, same jobs", runner["jobs_per_s"], "jobs/s",
               command=runner["command"], note=describe(runner)),
        Figure("peer", "runner / peer, jobs/s", ratio, "x", "≥ 10x", ratio >= 10,
               report.bench_cmd),
    )  # fmt: skip
    return report


def main() -> None:
    args = bench_parser(__doc__, jobs=500, concurrency=128, server="sandbox").parse_args()
    try:
        report = run(args.jobs, args.concurrency, args.workdir, args.server)
    except Skipped as exc:
        sys.exit(f"skipped: {exc}")
    print_report(report, raw=args.json)


if __name__ == "__main__":
    main()
