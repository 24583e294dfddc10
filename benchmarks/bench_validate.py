"""How long validating a 100,000-job manifest takes, and its peak memory.

Usage::

    python benchmarks/bench_validate.py            # 100,000 jobs, every layout
    python benchmarks/bench_validate.py --jobs 20000 --layout yaml

Layouts: ``yaml`` (every job written inline, 5 fields each, a quarter with explicit seeds and
qualities), ``csv`` (the same jobs as rows of a CSV file), ``matrix`` (1/10 of the jobs times
a 10-seed matrix), ``images`` (CSV rows pointing at 1,000 distinct local PNG files). Each
layout runs in a fresh child process so its peak RSS (``ru_maxrss``) is its own; the figure
includes the interpreter and imports, shown separately as the baseline.
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROMPT = (
    "Animate the castle scene with a dynamic drone-style camera movement circling around it, "
    "trees swaying in the wind and birds flying, variation number {i}"
)
LAYOUTS = ("yaml", "csv", "matrix", "images")


def _row(i: int) -> dict[str, object]:
    row: dict[str, object] = {
        "id": f"job-{i:06d}",
        "inputImageUrl": f"https://cdn.example.com/inputs/{i % 997}.jpg",
        "prompt": PROMPT.format(i=i),
    }
    if i % 4 == 0:
        row["seed"] = i
        row["quality"] = "720p"
    return row


def write_yaml(folder: Path, jobs: int) -> Path:
    path = folder / "big.yaml"
    with path.open("w", encoding="utf-8") as out:
        out.write("model: PixVerse/image-to-video-v5\n")
        out.write("defaults:\n  quality: 540p\n  duration: 5\n  Watermark: false\n")
        out.write("jobs:\n")
        for i in range(jobs):
            row = _row(i)
            out.write(f"  - id: {row['id']}\n")
            out.write(f"    inputImageUrl: {row['inputImageUrl']}\n")
            out.write(f"    prompt: {row['prompt']}\n")
            if "seed" in row:
                out.write(f"    seed: {row['seed']}\n    quality: {row['quality']}\n")
    return path


def _write_csv(path: Path, rows: list[dict[str, object]]) -> None:
    names = ["id", "inputImageUrl", "image", "prompt", "seed", "quality"]
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=names)
        writer.writeheader()
        writer.writerows(rows)


def write_csv(folder: Path, jobs: int) -> Path:
    _write_csv(folder / "jobs.csv", [_row(i) for i in range(jobs)])
    path = folder / "big.yaml"
    path.write_text("defaults: {duration: 5}\njobs_from: jobs.csv\n", encoding="utf-8")
    return path


def write_matrix(folder: Path, jobs: int) -> Path:
    base = max(1, jobs // 10)
    rows = [{k: v for k, v in _row(i).items() if k != "seed"} for i in range(base)]
    _write_csv(folder / "jobs.csv", rows)
    path = folder / "big.yaml"
    path.write_text(
        "jobs_from: jobs.csv\nmatrix:\n  seed: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n",
        encoding="utf-8",
    )
    return path


def write_images(folder: Path, jobs: int) -> Path:
    images = folder / "images"
    images.mkdir()
    header = b"\x89PNG\r\n\x1a\n"
    for n in range(1000):
        (images / f"{n}.png").write_bytes(header + n.to_bytes(4, "big") * 4096)  # ~16 KiB
    rows = []
    for i in range(jobs):
        row = _row(i)
        del row["inputImageUrl"]
        row["image"] = f"images/{i % 1000}.png"
        rows.append(row)
    _write_csv(folder / "jobs.csv", rows)
    path = folder / "big.yaml"
    path.write_text("jobs_from: jobs.csv\n", encoding="utf-8")
    return path


WRITERS = {"yaml": write_yaml, "csv": write_csv, "matrix": write_matrix, "images": write_images}


def child(layout: str, jobs: int) -> None:
    """Generate, then time ``load_manifest``; print one JSON line."""
    sys.path.insert(0, str(ROOT))
    from batch_runner.manifest.loader import load_manifest

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with tempfile.TemporaryDirectory(prefix="bench-validate-") as tmp:
        path = WRITERS[layout](Path(tmp), jobs)
        size = sum(p.stat().st_size for p in Path(tmp).iterdir() if p.is_file())
        started = time.perf_counter()
        manifest = load_manifest(path)
        elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    print(
        json.dumps(
            {
                "layout": layout,
                "jobs": len(manifest.jobs),
                "file_mb": round(size / 1e6, 1),
                "seconds": round(elapsed, 2),
                "peak_rss_mb": round(peak * scale / 2**20),
                "baseline_rss_mb": round(baseline * scale / 2**20),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--layout", choices=LAYOUTS, action="append")
    parser.add_argument("--child", choices=LAYOUTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.jobs)
        return
    print(f"{'layout':8} {'jobs':>9} {'files':>8} {'seconds':>8} {'peak RSS':>9} {'baseline':>9}")
    for layout in args.layout or LAYOUTS:
        command = [sys.executable, __file__, "--child", layout, "--jobs", str(args.jobs)]
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(
            f"{r['layout']:8} {r['jobs']:>9,} {r['file_mb']:>6} MB {r['seconds']:>8} "
            f"{r['peak_rss_mb']:>6} MB {r['baseline_rss_mb']:>6} MB"
        )


if __name__ == "__main__":
    main()
