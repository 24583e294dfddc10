"""Profile: where the runner's CPU per job goes, for the engineers cutting it.

    python benchmarks/profile_runner.py [--jobs 2000] [--concurrency 128] [--top 25]
        [--prof FILE] [--no-strace] [--imports]

Runs the real CLI under cProfile (``python -m cProfile -o FILE -m batch_runner run ...
--no-socket --poll-interval 0.05``) against the stand-in server and prints the top
functions by cumulative and by own time, with their share of the profiled time and
microseconds per job. cProfile sees the main thread only (the download I/O pool's threads
are not in it) and slows Python code about 1.5-2x, so shares matter, not absolute times;
the un-profiled CPU per job comes from a second run under ``strace -c -f`` (every thread's
syscalls, counted), or a plain run when strace is missing or not permitted here.
``--imports`` adds the slowest imports of ``batch-runner --version`` (``-X importtime``).
"""

from __future__ import annotations

import pstats
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PY, ROOT, banner, bench_parser, check, count_files, measure, show, workdir
from jobsets import FAST_POLL, runner_cmd, write_manifest
from servers import StandinProcess, describe, figures


def where(key: tuple[str, int, str]) -> str:
    """``file:function`` with the file shortened to the repository or site-packages."""
    path, line, func = key
    if path == "~":
        return func  # a built-in, e.g. <method 'send' of '_socket.socket' objects>
    text = path
    for base in (str(ROOT) + "/", "site-packages/", "/lib/python3"):
        if base in text:
            text = text.split(base, 1)[1]
            break
    return f"{text}:{line}:{func}"


def top(prof: Path, jobs: int, count: int) -> str:
    """The top ``count`` functions by cumulative and by own time, as two text tables."""
    stats = pstats.Stats(str(prof))
    rows = stats.stats  # type: ignore[attr-defined]
    total = sum(tt for _cc, _nc, tt, _ct, _callers in rows.values()) or 1e-9
    lines = [f"profiled time {total:.2f} s over {jobs} jobs ({total / jobs * 1e6:.0f} µs/job)"]
    for title, index in (("cumulative", 3), ("own time", 2)):
        header = f"{'share':>6} {'µs/job':>8} {'cum s':>7} {'own s':>7} {'calls':>9}  where"
        lines += ["", f"top {count} by {title}:", header]
        ranked = sorted(rows.items(), key=lambda kv: kv[1][index], reverse=True)[:count]
        for key, (_cc, nc, tt, ct, _callers) in ranked:
            value = ct if index == 3 else tt
            lines.append(
                f"{value / total * 100:5.1f}% {value / jobs * 1e6:8.1f} {ct:7.2f} {tt:7.2f} "
                f"{nc:9d}  {where(key)}"
            )
    return "\n".join(lines)


def strace_works() -> bool:
    if shutil.which("strace") is None:
        return False
    done = subprocess.run(["strace", "-f", "-c", "-o", "/dev/null", "true"],
                          capture_output=True, check=False)  # fmt: skip
    return done.returncode == 0


def syscall_table(path: Path, jobs: int, count: int) -> str:
    """strace -c's summary, the busiest ``count`` syscalls, with calls per job added."""
    out = []
    for line in path.read_text(errors="replace").splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[0][0].isdigit() and parts[3].isdigit():
            line = f"{line}   ({int(parts[3]) / jobs:.1f}/job)"
        out.append(line)
    return "\n".join(out[: count + 2] + out[-2:])


def import_times(count: int) -> str:
    done = subprocess.run([PY, "-X", "importtime", "-m", "batch_runner", "--version"],
                          capture_output=True, text=True, cwd=ROOT, check=False)  # fmt: skip
    rows = []
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and line.count("|") >= 2:
            own, cum, name = line.removeprefix("import time:").split("|", 2)
            if own.strip().isdigit():
                rows.append((int(cum), int(own), name.strip()))
    rows.sort(reverse=True)
    lines = ["slowest imports of `python -m batch_runner --version` (cumulative ms):"]
    lines += [f"{cum / 1000:8.1f} {own / 1000:8.1f}  {name}" for cum, own, name in rows[:count]]
    return "\n".join(lines)


def main() -> None:
    parser = bench_parser(__doc__, jobs=2000, concurrency=128)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--prof", type=Path, help="keep the cProfile output here")
    parser.add_argument("--no-strace", action="store_true", help="skip the strace -c run")
    parser.add_argument("--imports", action="store_true", help="also profile --version imports")
    args = parser.parse_args()
    with workdir(args.workdir, "profile") as folder:
        manifest = write_manifest(folder / "profile.yaml", args.jobs, tag="profile")
        prof = args.prof or folder / "runner.prof"
        base = runner_cmd(manifest, folder / "out-prof", args.concurrency, *FAST_POLL)
        cmd = [PY, "-m", "cProfile", "-o", str(prof), *base[1:]]
        with StandinProcess(log=folder / "standin-prof.log") as sb:
            banner(f"profile: {show(cmd)}")
            m = measure(cmd, env=sb.env(), log=folder / "prof.log", server=sb)
            check(m, "profiled run")
        if count_files(folder / "out-prof") != args.jobs:
            raise RuntimeError("the profiled run did not save every output")
        print(f"$ {show(cmd)}")
        print(
            f"under cProfile: {describe(figures('prof', cmd, {}, m, sb, args.jobs, {}, args.jobs))}"
        )
        print(top(prof, args.jobs, args.top))

        runs = [("without a profiler", "plain", [])]
        if args.no_strace:
            pass
        elif strace_works():
            trace = folder / "strace.txt"
            runs.append(("under strace -c -f (slower)", "strace",
                         ["strace", "-f", "-c", "-o", str(trace)]))  # fmt: skip
        else:
            print("\n(strace missing or not permitted here: syscall counts skipped)")
        for label, name, prefix in runs:
            plain = runner_cmd(manifest, folder / f"out-{name}", args.concurrency, *FAST_POLL)
            plain = [*prefix, *plain]
            with StandinProcess(log=folder / f"standin-{name}.log") as sb:
                banner(f"profile: {show(plain)}")
                m = measure(plain, env=sb.env(), log=folder / f"{name}.log", server=sb)
                check(m, f"{name} run")
            print(f"\n$ {show(plain)}")
            print(f"{label}: {describe(figures(name, plain, {}, m, sb, args.jobs, {}, args.jobs))}")
        if len(runs) > 1:
            print("\nsyscalls, every thread of the runner:")
            print(syscall_table(trace, args.jobs, args.top))
    if args.imports:
        print()
        print(import_times(args.top))


if __name__ == "__main__":
    main()
