"""Peak RSS over a whole run, with the moment it is reached: where a large batch's memory goes.

    python benchmarks/mem_timeline.py [--jobs 100000] [--concurrency 256] [-- RUN FLAGS...]

Why: ``bench_scale.py`` reports one peak per command; finding what raises it needs the
resident size over time beside what the run was doing. This runs the real CLI (instant tasks
from ``standin_server.py``, polling, as ``bench_scale.py`` does), samples the child's
``VmRSS`` every 20 ms from ``/proc`` (Linux), and prints the RSS when the run starts work,
at every tenth of the jobs, at the end, and the peak with its time. Extra arguments after
``--`` go to ``batch-runner run`` (``--gallery-interval 0`` to leave the live gallery out).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import workdir
from jobsets import FAST_POLL, runner_cmd, write_manifest
from servers import StandinProcess

_SAVED = re.compile(r"\] saved ")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("extra", nargs="*", help="flags for batch-runner run (after --)")
    args = parser.parse_args()
    with workdir(None, "memtl") as folder, StandinProcess(log=folder / "standin.log") as sb:
        manifest = write_manifest(folder / "big.yaml", args.jobs, tag="mem")
        cmd = runner_cmd(manifest, folder / "out", args.concurrency, *FAST_POLL, *args.extra)
        env = {k: v for k, v in sb.env().items() if k != "PYTHONDONTWRITEBYTECODE"}
        started = time.monotonic()
        child = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)  # fmt: skip
        samples: list[tuple[float, float]] = []

        def sample() -> None:
            status = f"/proc/{child.pid}/status"
            while child.poll() is None:
                try:
                    with open(status) as lines:
                        for line in lines:
                            if line.startswith("VmRSS"):
                                mb = int(line.split()[1]) / 1024
                                samples.append((time.monotonic() - started, mb))
                except OSError:
                    pass
                time.sleep(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        saved, step = 0, max(1, args.jobs // 10)
        assert child.stdout is not None
        for line in child.stdout:
            now = samples[-1] if samples else (0.0, 0.0)
            if "jobs:" in line and "to submit" in line:
                print(f"{now[0]:7.1f} s {now[1]:6.0f} MB  work starts ({line.strip()[:60]})")
            elif _SAVED.search(line):
                saved += 1
                if saved % step == 0:
                    print(f"{now[0]:7.1f} s {now[1]:6.0f} MB  {saved:,} outputs saved")
        code = child.wait()
        sampler.join()
    if not samples:
        raise SystemExit("no samples (is /proc there?)")
    peak = max(samples, key=lambda s: s[1])
    print(f"{samples[-1][0]:7.1f} s {samples[-1][1]:6.0f} MB  exit {code}")
    print(f"peak RSS {peak[1]:.0f} MB at {peak[0]:.1f} s of {samples[-1][0]:.1f} s "
          f"({args.jobs:,} jobs); {' '.join(cmd[2:])}")  # fmt: skip


if __name__ == "__main__":
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    main()
