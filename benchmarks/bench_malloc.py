"""What the run command's malloc tuning costs and saves, A/B in one run.

    python benchmarks/bench_malloc.py [--jobs 3000] [--concurrency 128] [--rounds 3]

Why: ``batch_runner/_memory.py`` caps glibc's arenas and fixes its mmap threshold for the
``run`` command; this checks that neither costs CPU and shows what each saves. Each round
runs the real CLI three times against one stand-in server (instant tasks, polling):
``tuned`` as shipped, ``none`` with the tuning switched off, ``arenas`` with only the arena
cap, and prints user and system CPU-seconds and peak RSS (``os.wait4``), then the medians.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import bench_parser, workdir
from jobsets import FAST_POLL, write_manifest
from servers import StandinProcess

_MAIN = "import sys\nfrom batch_runner.cli import main\nsys.exit(main())\n"
VARIANTS = {
    "tuned": "",
    "none": "import batch_runner._memory as m\nm.tune_malloc = lambda *a: False\n",
    "arenas": (
        "import ctypes, batch_runner._memory as m\n"
        "m.tune_malloc = lambda *a: bool(ctypes.CDLL(None).mallopt(-8, m.RUN_ARENAS))\n"
    ),
}


def main() -> None:
    parser = bench_parser(__doc__, jobs=3000, concurrency=128)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    figures: dict[str, list[tuple[float, float, float]]] = {name: [] for name in VARIANTS}
    with workdir(args.workdir, "malloc") as folder, StandinProcess(log=folder / "s.log") as sb:
        manifest = write_manifest(folder / "m.yaml", args.jobs, tag="malloc")
        env = {k: v for k, v in sb.env().items() if k != "PYTHONDONTWRITEBYTECODE"}
        for n in range(args.rounds):
            for name, prelude in VARIANTS.items():
                cmd = [sys.executable, "-c", prelude + _MAIN, "run", str(manifest), "--out",
                       str(folder / f"{name}-{n}"), "--concurrency", str(args.concurrency),
                       "--log-format", "text", *FAST_POLL]  # fmt: skip
                child = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
                _, status, usage = os.wait4(child.pid, 0)
                if status:
                    raise SystemExit(f"{name}: exit status {status}")
                row = (usage.ru_utime, usage.ru_stime, usage.ru_maxrss / 1024)
                figures[name].append(row)
                print(f"round {n} {name:7} user {row[0]:.2f} s, system {row[1]:.2f} s, "
                      f"peak RSS {row[2]:.0f} MB", flush=True)  # fmt: skip
    print(f"medians over {args.rounds} rounds, {args.jobs:,} jobs each:")
    for name, rows in figures.items():
        user, system, rss = (statistics.median(col) for col in zip(*rows, strict=True))
        per_job = (user + system) / args.jobs * 1000
        print(f"  {name:7} {per_job:.2f} ms CPU per job (user {user:.2f} s + system "
              f"{system:.2f} s), peak RSS {rss:.0f} MB")  # fmt: skip


if __name__ == "__main__":
    main()
