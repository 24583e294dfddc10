"""Validate: wall time and peak RSS of ``batch-runner validate`` on large manifests.

    python benchmarks/bench_validate.py            # 100,000 jobs, every layout
    python benchmarks/bench_validate.py --jobs 20000 --layout yaml

Why: validation runs before every run and resume, so its cost is paid on every start.
Layouts: ``yaml`` (every job written inline, 5 fields each, a quarter with explicit seeds and
qualities), ``csv`` (the same jobs as rows of a CSV file), ``matrix`` (1/10 of the jobs times
a 10-seed matrix), ``images`` (CSV rows pointing at 1,000 distinct local PNG files). Each
layout is the real CLI in its own process (wall time and ``ru_maxrss`` of that process, the
interpreter and imports included); ``batch-runner --version`` is the baseline.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Figure, Report, banner, bench_parser, check, measure, print_report, rel
from common import workdir as make_workdir
from jobsets import cli

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


def run(
    jobs: int = 100_000, layouts: tuple[str, ...] = LAYOUTS, base: Path | None = None
) -> Report:
    report = Report(
        bench_cmd=f"python {rel(__file__)} --jobs {jobs}"
        + "".join(f" --layout {x}" for x in layouts if tuple(layouts) != LAYOUTS)
    )
    baseline = measure(cli("--version"))
    check(baseline, "batch-runner --version")
    report.add(Figure("validate", "baseline: --version", baseline.rss_mb, "MB",
                      command="python -m batch_runner --version",
                      note=f"interpreter + CLI imports; wall {baseline.wall:.2f} s"))  # fmt: skip
    rows = {}
    with make_workdir(base, "validate") as folder:
        for layout in layouts:
            sub = folder / layout
            sub.mkdir()
            path = WRITERS[layout](sub, jobs)
            size = sum(p.stat().st_size for p in sub.iterdir() if p.is_file())
            cmd = cli("validate", str(path))
            banner(f"validate: {layout}: {' '.join(cmd)}")
            m = report.saw(measure(cmd, log=sub / "validate.log"))
            check(m, f"validate {layout}")
            rows[layout] = {"wall": m.wall, "rss_mb": m.rss_mb, "cpu": m.cpu, "mb": size / 1e6,
                            "out": m.out.strip()[-500:]}  # fmt: skip
            report.add(Figure(
                "validate", f"{layout}, {jobs:,} jobs", m.wall, "s", "< 2 s", m.wall < 2,
                f"python -m batch_runner validate {layout}/big.yaml",
                f"files {size / 1e6:.1f} MB; peak RSS {m.rss_mb:.0f} MB "
                f"(baseline {baseline.rss_mb:.0f} MB); CPU {m.cpu:.1f} s",
            ))  # fmt: skip
    report.raw = {"jobs": jobs, "baseline_rss_mb": baseline.rss_mb, "layouts": rows}
    return report


def main() -> None:
    parser = bench_parser(__doc__, jobs=100_000)
    parser.add_argument("--layout", choices=LAYOUTS, action="append")
    args = parser.parse_args()
    report = run(args.jobs, tuple(args.layout or LAYOUTS), args.workdir)
    print_report(report, raw=args.json)


if __name__ == "__main__":
    main()
