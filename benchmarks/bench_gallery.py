"""What the gallery costs at 10,000 and 100,000 jobs: a full write, a rewrite during a run,
and, with ``--chromium``, how quickly a page opens.

    python benchmarks/bench_gallery.py                      # 10,000 and 100,000 jobs
    python benchmarks/bench_gallery.py --jobs 100000 --chromium

The ledger is synthetic (no 100,000 ledger writes): the prompts of a real sweep, a model
matrix of three models (so the side-by-side view has a row per three jobs), 90 % succeeded
with one video each, 10 % failed. Figures:

* full write: every page, static (what the end of a run writes): wall and CPU seconds,
  pages, bytes in all, the index's bytes;
* live run: the same folder going from all pending to all done the way a run at
  ``--rate`` jobs/s with 256 tasks in flight moves it, one rewrite per ``--interval``
  seconds (what :class:`LiveGallery` does): the first (every page, now live), then per
  rewrite the pages written and the seconds taken, mean and worst, and the gallery's share
  of one core over the run;
* rewrite by a new process: a new :class:`Book` on the finished folder (a resumed run, or
  ``write_gallery``), which reads the pages' signatures from disk and writes the index only;
* unchanged: a rewrite when no job changed (the index only, as the heartbeat does);
* chromium: DOMContentLoaded and first contentful paint of the index and of a middle page
  in headless Chromium from ``file://`` (median of 3).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from batch_runner.ledger.events import SavedOutput  # noqa: E402
from batch_runner.ledger.state import JobRecord, JobStatus, LedgerState  # noqa: E402
from batch_runner.manifest.job import Job  # noqa: E402
from batch_runner.manifest.loader import Manifest  # noqa: E402
from batch_runner.report.gallery import Book  # noqa: E402
from batch_runner.report.gallery.page import Live  # noqa: E402

MODELS = ("PixVerse/image-to-video-v5", "klingai/kling-v3", "google/veo3.1")
PROMPT = "Animate the castle with a slow drone orbit, birds, drifting clouds and light. " * 3


def folder(n: int, root: Path) -> tuple[Manifest, LedgerState]:
    jobs, state = [], LedgerState()
    for i in range(n):
        group = f"castle__seed-{i // 3}"
        model = MODELS[i % 3]
        job_id = f"{group}__model-{model.rpartition('/')[2]}"
        url = f"https://127.0.0.1:9/cdn.example.com/inputs/{i // 3:06d}-castle.jpg"
        inputs = {"prompt": PROMPT, "inputImageUrl": url, "duration": "5"}
        jobs.append(Job(job_id, i, inputs, None, "f" * 64, f"m.yaml:{i}", model=model,
                        group=group))  # fmt: skip
        state.jobs[job_id] = JobRecord(job_id, JobStatus.PENDING, "f" * 64, model=model,
                                       updated_at=0.0)  # fmt: skip
    state.recount()
    manifest = Manifest(root / "m.yaml", MODELS[0], tuple(jobs), None, None, {}, MODELS)
    return manifest, state


def finish(state: LedgerState, job_id: str, i: int, t: float) -> None:
    r = state.jobs[job_id]
    if i % 10 == 0:
        new = dataclasses.replace(r, status=JobStatus.FAILED, error="content policy", cost=0.0,
                                  updated_at=t)  # fmt: skip
    else:
        out = SavedOutput("0.mp4", f"{job_id}.mp4", 1_000_000, "0" * 64, "video/mp4", "video")
        new = dataclasses.replace(r, status=JobStatus.SUCCEEDED, outputs=(out,), cost=0.3,
                                  updated_at=t)  # fmt: skip
    state.jobs[job_id] = new


def fly(state: LedgerState, job_id: str, t: float) -> None:
    r = state.jobs[job_id]
    if r.status is JobStatus.PENDING:
        running = JobStatus.RUNNING
        state.jobs[job_id] = dataclasses.replace(
            r, status=running, service_status="task_start", updated_at=t
        )


def timed(fn):  # type: ignore[no-untyped-def]
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn()
    return value, time.perf_counter() - wall, time.process_time() - cpu


def bench(n: int, rate: float, interval: float, chromium: bool) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        manifest, state = folder(n, root)
        ids = [job.id for job in manifest.jobs]
        for i, job_id in enumerate(ids):
            finish(state, job_id, i, 1.0)
        state.recount()
        written, wall, cpu = timed(lambda: Book(root / "full", manifest).write(state))
        full = root / "full"
        index = (full / "index.html").stat().st_size
        total = index + sum(p.stat().st_size for p in (full / "gallery").iterdir())
        result: dict[str, object] = {
            "jobs": n,
            "full_write": {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
                           "pages": written.pages, "bytes": total, "index_bytes": index},
        }  # fmt: skip
        again, wall, cpu = timed(lambda: Book(root / "full", manifest).write(state))
        result["rewrite_by_a_new_process"] = {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
                                              "pages": again.pages}  # fmt: skip
        unchanged = Book(root / "full", manifest)
        unchanged.write(state)
        _, wall, cpu = timed(lambda: unchanged.write(state))
        result["unchanged_rewrite"] = {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3)}

        # a run: pending -> in flight -> done, in manifest order, one rewrite per interval
        manifest, state = folder(n, root)
        book = Book(root / "live", manifest)
        live = Live(interval, "<b>Run in progress</b>", 120)
        per_flush = max(1, int(rate * interval))
        done, t = 0, 1.0
        first, fwall, fcpu = timed(lambda: book.write(state, live=live))
        rewrites: list[tuple[float, float, int]] = []
        while done < n:
            t += 1
            for i in range(done, min(n, done + per_flush)):
                finish(state, ids[i], i, t)
            done = min(n, done + per_flush)
            for i in range(done, min(n, done + 256)):
                fly(state, ids[i], t)
            state.recount()
            w, wall, cpu = timed(lambda: book.write(state, live=live))
            rewrites.append((wall, cpu, w.pages))
        end, ewall, ecpu = timed(lambda: book.write(state))  # the end: static again
        walls = [w for w, _, _ in rewrites]
        cpus = [c for _, c, _ in rewrites]
        run_seconds = n / rate
        gallery_cpu = fcpu + sum(cpus) + ecpu
        result["live_run"] = {
            "rate_jobs_per_s": rate,
            "interval_s": interval,
            "rewrites": len(rewrites),
            "first_write": {"wall_s": round(fwall, 2), "cpu_s": round(fcpu, 2),
                            "pages": first.pages},
            "rewrite_wall_s": {"mean": round(statistics.mean(walls), 3),
                               "max": round(max(walls), 3)},
            "rewrite_cpu_s": {"mean": round(statistics.mean(cpus), 3),
                              "max": round(max(cpus), 3)},
            "pages_per_rewrite": {"mean": round(statistics.mean(p for *_, p in rewrites), 1),
                                  "max": max(p for *_, p in rewrites)},
            "final_write": {"wall_s": round(ewall, 2), "cpu_s": round(ecpu, 2),
                            "pages": end.pages},
            "gallery_cpu_s": round(gallery_cpu, 1),
            "share_of_one_core": f"{gallery_cpu / run_seconds:.1%} of a {run_seconds:.0f} s run",
        }  # fmt: skip
        if chromium:
            result["chromium"] = asyncio.run(open_times(full, root / "profile"))
        result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return result


async def open_times(folder: Path, profile: Path) -> dict[str, object]:
    from cdphelp import chromium

    pages = sorted((folder / "gallery").glob("all-*.html"))
    middle = pages[len(pages) // 2] if pages else folder / "index.html"
    found: dict[str, object] = {}
    async with chromium(profile) as cdp:
        await cdp.send("Page.enable")
        for name, page in (("index", folder / "index.html"), (middle.name, middle)):
            runs = []
            for _ in range(3):
                await cdp.open("about:blank")
                await cdp.open(page.as_uri())
                runs.append(
                    await cdp.js("""(() => {
                    const n = performance.getEntriesByType('navigation')[0];
                    const p = performance.getEntriesByName('first-contentful-paint')[0];
                    return [n.domContentLoadedEventEnd, p ? p.startTime : null]})()""")
                )
            found[name] = {
                "dom_content_loaded_ms": round(statistics.median(r[0] for r in runs)),
                "first_contentful_paint_ms": round(statistics.median(r[1] or 0 for r in runs)),
                "bytes": page.stat().st_size,
            }
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, action="append", help="default: 10000 and 100000")
    parser.add_argument("--rate", type=float, default=300.0, help="jobs/s of the simulated run")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between rewrites")
    parser.add_argument("--chromium", action="store_true", help="also time pages in Chromium")
    args = parser.parse_args()
    for n in args.jobs or [10_000, 100_000]:
        print(json.dumps(bench(n, args.rate, args.interval, args.chromium), indent=2))


if __name__ == "__main__":
    main()
