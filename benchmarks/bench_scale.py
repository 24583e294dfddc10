"""Scale: a 100,000-job manifest, validated, run against instant tasks, re-run, inspected.

    python benchmarks/bench_scale.py [--jobs 100000] [--concurrency 256] [--repeat 3]

Why: the issue's scale targets are about what a user waits for and how much memory a large
batch takes, start to finish. Each step is the real CLI in its own process, measured with
``os.wait4`` (wall time, user + system CPU, ``ru_maxrss``), against the stand-in server
(``standin_server.py``, another process, instant tasks; the runner polls with
``--no-socket --poll-interval 0.05`` so its own CPU is the limit):

* ``batch-runner --version`` (start-up alone) and ``status`` of a finished 10-job folder;
* ``batch-runner validate`` of the inline YAML manifest (median of ``--repeat``);
* the full ``run`` (wall, CPU, CPU per job, peak RSS, the server's CPU per task);
* the sizes of ``ledger.json``, ``journal.jsonl`` and the gallery ``index.html``;
* the same ``run`` again on the finished folder (must submit nothing: the sealed path), and
  once more from a copy of the manifest with a comment added (the full path);
* ``batch-runner status`` of the finished folder.

Short commands are run ``--repeat`` times and the median is shown (all runs in the JSON).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    PY,
    Figure,
    Measured,
    Report,
    banner,
    bench_parser,
    check,
    count_files,
    measure,
    measure_median,
    print_report,
    rel,
    runs_text,
    show,
    workdir,
)
from jobsets import FAST_POLL, cli, engine_wall, runner_cmd, write_manifest
from servers import StandinProcess, describe, figures

LEDGER, JOURNAL, GALLERY = "ledger.json", "journal.jsonl", "index.html"


def version_cmd() -> list[str]:
    """``batch-runner --version`` as a user types it: the venv's console script if any."""
    script = Path(PY).parent / "batch-runner"
    return [str(script), "--version"] if script.exists() else cli("--version")


def median_of(cmd: list[str], repeat: int, report: Report, log: Path) -> Measured:
    return report.saw(measure_median(cmd, repeat, log=log))


def size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def run(
    jobs: int = 100_000, concurrency: int = 256, base: Path | None = None, repeat: int = 3
) -> Report:
    report = Report(
        bench_cmd=f"python {rel(__file__)} --jobs {jobs} --concurrency {concurrency} "
        f"--repeat {repeat}"
    )
    n = f"{jobs:,} jobs"
    with workdir(base, "scale") as folder, StandinProcess(log=folder / "standin.log") as sb:
        env = sb.env()
        report.commands.append(sb.command)
        version = median_of(version_cmd(), repeat, report, folder / "version.log")

        small = write_manifest(folder / "small.yaml", 10, tag="small")
        small_out = folder / "small-out"
        check(measure(runner_cmd(small, small_out, 10, *FAST_POLL), env=env), "10-job run")
        small_status = median_of(cli("status", str(small_out)), repeat, report,
                                 folder / "status-small.log")  # fmt: skip

        manifest = write_manifest(folder / "big.yaml", jobs, tag="scale")
        manifest_mb = size(manifest) / 1e6
        validate_cmd = cli("validate", str(manifest))
        banner(f"scale: {show(validate_cmd)}")
        # the median of ``repeat``: one run of a 2 s command is at the mercy of this
        # machine's phase (1.5x between runs minutes apart)
        validate = median_of(validate_cmd, repeat, report, folder / "validate.log")

        out = folder / "out"
        cmd = runner_cmd(manifest, out, concurrency, *FAST_POLL)
        banner(f"scale: full run: {show(cmd)}")
        created_before = int(sb.stats()["tasks_created"])
        first = report.saw(measure(cmd, env=env, log=folder / "run.log", server=sb))
        check(first, "full run")
        created = int(sb.stats()["tasks_created"]) - created_before
        saved = count_files(out)
        sizes = {name: size(out / name) for name in (LEDGER, JOURNAL, GALLERY)}

        banner(f"scale: re-run of the finished folder: {show(cmd)}")
        again = report.saw(measure(cmd, env=env, log=folder / "rerun.log", server=sb))
        check(again, "re-run")
        created_again = int(sb.stats()["tasks_created"]) - created_before - created

        # The same jobs from a manifest that differs by a comment: no seal holds, so this is
        # the full path (snapshot decoded, manifest loaded, every file verified "quick").
        touched = folder / "touched.yaml"
        shutil.copyfile(manifest, touched)  # streamed: this process stays small (see measure)
        with touched.open("ab") as handle:
            handle.write(b"\n# touched\n")
        full_cmd = runner_cmd(touched, out, concurrency, *FAST_POLL)
        banner(f"scale: full-path re-run (manifest changed by a comment): {show(full_cmd)}")
        full = report.saw(measure(full_cmd, env=env, log=folder / "rerun-full.log", server=sb))
        check(full, "full-path re-run")
        created_again = int(sb.stats()["tasks_created"]) - created_before - created

        status_cmd = cli("status", str(out))
        banner(f"scale: {show(status_cmd)}")
        status = median_of(status_cmd, repeat, report, folder / "status.log")
    if saved != jobs or created != jobs or created_again:
        raise RuntimeError(f"scale: {saved} outputs, {created} tasks, {created_again} on re-run")

    row = figures("run", cmd, env, first, sb, jobs, {}, tasks=created)
    again_cmd = show(cmd) + "   # again: the finished folder"
    report.commands += [show(version_cmd()), show(validate_cmd), show(cmd), again_cmd,
                        show(full_cmd), show(status_cmd)]  # fmt: skip
    report.raw = {
        "jobs": jobs, "concurrency": concurrency, "manifest_mb": manifest_mb,
        "version": {"wall": version.wall, "runs": version.runs, "rss_mb": version.rss_mb},
        "status_10": {"wall": small_status.wall, "runs": small_status.runs,
                      "rss_mb": small_status.rss_mb},
        "validate": {"wall": validate.wall, "cpu": validate.cpu, "rss_mb": validate.rss_mb},
        "run": {**row, "engine_wall": engine_wall(first)},
        "sizes": sizes,
        "rerun": {"wall": again.wall, "cpu": again.cpu, "rss_mb": again.rss_mb,
                  "engine_wall": engine_wall(again), "out": again.out.strip()[-1000:]},
        "rerun_full": {"wall": full.wall, "cpu": full.cpu, "rss_mb": full.rss_mb,
                       "engine_wall": engine_wall(full)},
        "status": {"wall": status.wall, "runs": status.runs, "rss_mb": status.rss_mb,
                   "cpu": status.cpu},
    }  # fmt: skip

    run_cmd, again_show, v_cmd = show(cmd), show(cmd) + "  (again)", show(validate_cmd)
    per_job = first.cpu / jobs * 1000
    rows = [
        ("--version, wall", version.wall, "s", "< 0.15 s", version.wall < 0.15,
         show(version_cmd()), f"{runs_text(version)}peak RSS {version.rss_mb:.0f} MB"),
        ("status of a 10-job folder, wall", small_status.wall, "s", "< 0.3 s",
         small_status.wall < 0.3, show(cli("status", str(small_out))),
         f"{runs_text(small_status)}peak RSS {small_status.rss_mb:.0f} MB"),
        (f"validate {n}, wall", validate.wall, "s", "< 2 s", validate.wall < 2, v_cmd,
         f"{runs_text(validate)}manifest {manifest_mb:.1f} MB (inline YAML); "
         f"CPU {validate.cpu:.1f} s"),
        (f"validate {n}, peak RSS", validate.rss_mb, "MB", "", None, v_cmd, ""),
        (f"run {n}, wall", first.wall, "s", "", None, run_cmd,
         f"concurrency {concurrency}, instant tasks; {row['jobs_per_s']:,.0f} jobs/s; "
         f"engine wall {engine_wall(first)} s"),
        (f"run {n}, CPU", first.cpu, "s", "", None, run_cmd,
         f"user {first.user:.1f} s + system {first.system:.1f} s"),
        (f"run {n}, CPU per job", per_job, "ms", "≤ 1 ms", per_job <= 1.0, run_cmd,
         describe(row)),
        (f"run {n}, peak RSS", first.rss_mb, "MB", "< 200 MB", first.rss_mb < 200, run_cmd, ""),
        *((f"{name} after the run", sizes[name] / 1e6, "MB", "", None, run_cmd,
           f"{sizes[name]:,} bytes")
          for name in (LEDGER, JOURNAL, GALLERY)),
        (f"re-run, all {n} done, wall", again.wall, "s", "< 2 s", again.wall < 2, again_show,
         f"CPU {again.cpu:.1f} s; no task submitted"),
        (f"re-run, all {n} done, peak RSS", again.rss_mb, "MB", "< 200 MB",
         again.rss_mb < 200, again_show, ""),
        (f"full-path re-run, all {n} done, wall", full.wall, "s", "", None, show(full_cmd),
         f"the manifest changed by a comment (no seal holds); CPU {full.cpu:.1f} s; "
         "no task submitted"),
        (f"full-path re-run, all {n} done, peak RSS", full.rss_mb, "MB", "", None,
         show(full_cmd), ""),
        (f"status of the {n} folder, wall", status.wall, "s", "< 1 s", status.wall < 1,
         show(status_cmd), f"{runs_text(status)}CPU {status.cpu:.1f} s"),
        (f"status of the {n} folder, peak RSS", status.rss_mb, "MB", "< 150 MB",
         status.rss_mb < 150, show(status_cmd), ""),
    ]  # fmt: skip
    for name, value, unit, target, ok, command, note in rows:
        report.add(Figure("scale", name, value, unit, target, ok, command, note))
    return report


def main() -> None:
    parser = bench_parser(__doc__, jobs=100_000, concurrency=256)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each short command")
    args = parser.parse_args()
    print_report(run(args.jobs, args.concurrency, args.workdir, args.repeat), raw=args.json)


if __name__ == "__main__":
    main()
