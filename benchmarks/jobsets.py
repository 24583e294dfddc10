"""The job sets every benchmark runs, and the runner's command line.

One manifest writer for all benchmarks (written as text: fast even at 100,000 jobs, and the
jobs sit inline in the YAML like a user's), the same jobs as JSON lines for the contenders
that are not the runner, and ``runner_cmd``: the runner is only ever driven through its
CLI, so these benchmarks keep working while the package is restructured.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from common import PY, ROOT, Measured, banner

MODEL = "PixVerse/image-to-video-v5"
PROMPT = (
    "Animate the castle scene with a slow drone-style camera movement circling around it, "
    "trees swaying in the wind, variation {tag}-{i}"
)
#: flags that make the runner poll quickly: its own CPU, not the first poll's wait, is the limit
FAST_POLL = ("--no-socket", "--poll-interval", "0.05")


def job_id(i: int) -> str:
    return f"job-{i:06d}"


def job_inputs(i: int, tag: str) -> dict[str, str]:
    """The resolved inputs of job ``i``: what the manifest below makes the runner send."""
    return {
        "inputImageUrl": f"https://cdn.example.com/inputs/{i % 997}.jpg",
        "prompt": PROMPT.format(tag=tag, i=i),
        "quality": "540p",
        "duration": "5",
    }


def write_manifest(path: Path, count: int, tag: str) -> Path:
    """A manifest of ``count`` distinct jobs, every job inline."""
    with path.open("w", encoding="utf-8") as out:
        out.write(f"model: {MODEL}\n")
        out.write("defaults:\n  quality: 540p\n  duration: 5\n")
        out.write("jobs:\n")
        for i in range(count):
            inputs = job_inputs(i, tag)
            out.write(f"  - id: {job_id(i)}\n")
            out.write(f"    inputImageUrl: {inputs['inputImageUrl']}\n")
            out.write(f"    prompt: {inputs['prompt']}\n")
    return path


def write_jobs_jsonl(path: Path, count: int, tag: str) -> Path:
    """The same jobs as JSON lines ``{"id", "inputs"}`` for the raw loop and the peer script."""
    with path.open("w", encoding="utf-8") as out:
        for i in range(count):
            out.write(json.dumps({"id": job_id(i), "inputs": job_inputs(i, tag)}) + "\n")
    return path


def check_same_inputs(manifest: Path, jobs_file: Path) -> None:
    """The JSON lines hold exactly the inputs the runner resolves from the manifest.

    This one check imports the package (there is no CLI for resolved inputs); if the loader
    moved during a restructuring, it is skipped with a warning instead of failing the run.
    """
    sys.path.insert(0, str(ROOT))
    try:
        from batch_runner.manifest.loader import load_manifest
    except ImportError as exc:
        banner(f"warning: job sets not cross-checked ({exc})")
        return
    jobs = load_manifest(manifest).jobs
    with jobs_file.open(encoding="utf-8") as lines:
        for job, line in zip(jobs, lines, strict=True):
            row = json.loads(line)
            if row["id"] != job.id or row["inputs"] != dict(job.inputs):
                raise RuntimeError(f"job set mismatch at {job.id}: {row} vs {job.inputs}")


def runner_cmd(manifest: Path, out: Path, concurrency: int, *extra: str) -> list[str]:
    return [
        PY, "-m", "batch_runner", "run", str(manifest), "--out", str(out),
        "--concurrency", str(concurrency), "--log-format", "text", *extra,
    ]  # fmt: skip


def cli(*args: str) -> list[str]:
    """Any other ``batch-runner`` subcommand, as the real CLI."""
    return [PY, "-m", "batch_runner", *args]


_ENGINE_WALL = re.compile(r"wall time ([0-9.]+) s")


def engine_wall(m: Measured) -> float | None:
    """The runner's own "wall time" line (run engine only, without start-up)."""
    found = _ENGINE_WALL.search(m.out)
    return float(found.group(1)) if found else None
