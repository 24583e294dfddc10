"""``batch-runner run``: parse the flags, build the parts, hand over to the runner.

Signals: the first SIGINT or SIGTERM stops submitting and cancels the run; every durable
step is already on disk and the ledger is snapshotted on the way out (exit 130 or 143).
A second signal exits at once: the fsync'd journal still lets the next run resume.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from ..engine.runner import Runner, RunOptions
from ..engine.track import PollSchedule
from ..errors import BatchRunnerError, UsageError
from ..ledger.shard import check_layout, merged_state, parse_shard, shard_from_env
from ..ledger.state import LedgerState
from ..manifest.loader import Manifest, load_manifest
from ..report.notify import notify, summary_payload
from ..report.summary import print_dry_run, print_summary
from ..wiro.client import WiroClient
from ..wiro.retry import RetryPolicy
from .args import (
    add_output_flags,
    duration_seconds,
    make_reporter,
    positive_float,
    positive_int,
)

#: Sandbox timing for ``--sandbox``: quick enough for a demo, every status still visible.
DEMO_SANDBOX = {"queue_seconds": 0.3, "run_seconds": (1.5, 3.0)}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "run",
        help="run a manifest: submit, track, download, resumably",
        description=(
            "Run every job of MANIFEST on the Wiro API and download the videos into the "
            "output folder. Re-running the same command resumes: finished jobs are kept, "
            "tasks already on the service are tracked by their task id, never paid twice."
        ),
        epilog=_exit_codes(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("manifest", type=Path, help="the YAML manifest")
    p.add_argument(
        "--out",
        type=Path,
        help="output folder (default: the manifest's output_dir, else outputs/<manifest name>/)",
    )
    p.add_argument(
        "--concurrency",
        type=positive_int,
        help="tasks in flight on the service (default: the manifest's concurrency, else 4)",
    )
    p.add_argument(
        "--download-concurrency",
        type=positive_int,
        default=8,
        help="parallel downloads (default 8)",
    )
    p.add_argument(
        "--api-base", help="API base URL (default: $WIRO_API_BASE or https://api.wiro.ai/v1)"
    )
    p.add_argument(
        "--socket-url",
        help="task WebSocket URL (default: $WIRO_SOCKET_URL or wss://socket.wiro.ai/v1)",
    )
    p.add_argument("--no-socket", action="store_true", help="track completion by polling only")
    p.add_argument(
        "--sandbox",
        action="store_true",
        help="run against the built-in sandbox (no account, no network)",
    )
    p.add_argument(
        "--poll-interval",
        type=positive_float,
        default=1.0,
        help="first status check after submission, seconds (default 1)",
    )
    p.add_argument(
        "--poll-max",
        type=positive_float,
        default=15.0,
        help="longest wait between status checks, seconds (default 15)",
    )
    p.add_argument(
        "--task-timeout",
        type=duration_seconds,
        help="stop a task that runs longer than this (e.g. 600, 15m)",
    )
    p.add_argument(
        "--max-attempts",
        type=positive_int,
        default=1,
        help="tasks per job when generation fails (default 1)",
    )
    p.add_argument(
        "--retry-failed",
        action="store_true",
        help="give jobs that failed in earlier runs a new round",
    )
    p.add_argument(
        "--max-cost",
        type=positive_float,
        help="stop submitting before committed spend would pass this many USD",
    )
    p.add_argument(
        "--deadline",
        type=duration_seconds,
        help="stop submitting after this long (e.g. 45m, 2h) and exit 4",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="validate and show what would be submitted, resumed and skipped; send nothing",
    )
    p.add_argument(
        "--verify",
        choices=("quick", "full"),
        default="quick",
        help="on resume, re-hash finished outputs whose size or time changed (quick, default) "
        "or every one (full)",
    )
    p.add_argument(
        "--api-retries",
        type=positive_int,
        default=6,
        help="attempts per API call for errors worth retrying (default 6)",
    )
    p.add_argument(
        "--retry-max-wait",
        type=positive_float,
        default=120.0,
        help="longest time one API call is retried, seconds (default 120)",
    )
    p.add_argument(
        "--reconcile-delay",
        type=float,
        default=2.0,
        help="seconds to wait after an uncertain /Run before searching /Task/List for the "
        "task it may have created (default 2)",
    )
    p.add_argument(
        "--poll-error-budget",
        type=duration_seconds,
        default=900.0,
        help="give up following a task after its status requests failed this long; its task "
        "id is kept for the next run (default 15m)",
    )
    p.add_argument(
        "--shard",
        metavar="K/N",
        help="run only shard K of N (0 <= K < N) in DIR/shards/K-of-N/; without it, read from "
        "AWS_BATCH_JOB_ARRAY_INDEX/SIZE, SLURM_ARRAY_TASK_ID/COUNT/MIN or JOB_COMPLETION_INDEX",
    )
    p.add_argument(
        "--shard-count",
        type=positive_int,
        help="shard count for Kubernetes Indexed Jobs (also BATCH_RUNNER_SHARD_COUNT)",
    )
    p.add_argument(
        "--notify-url",
        help="POST a JSON summary of the run to this URL when it ends (webhook)",
    )
    add_output_flags(p)
    p.set_defaults(func=main)


def _exit_codes() -> str:
    from . import EXIT_CODES_HELP

    return EXIT_CODES_HELP


def output_dir_for(manifest: Manifest, out: Path | None) -> Path:
    if out is not None:
        return out
    if manifest.output_dir is not None:
        return manifest.output_dir
    return Path("outputs") / manifest.path.stem


def options_from_args(args: argparse.Namespace, manifest: Manifest, out_dir: Path) -> RunOptions:
    concurrency = args.concurrency or manifest.concurrency or 4
    return RunOptions(
        out_dir=out_dir,
        concurrency=concurrency,
        download_concurrency=args.download_concurrency,
        poll=PollSchedule(first=args.poll_interval, cap=max(args.poll_max, args.poll_interval)),
        task_timeout=args.task_timeout,
        max_attempts=args.max_attempts,
        retry_failed=args.retry_failed,
        max_cost=args.max_cost,
        deadline=args.deadline,
        use_socket=not args.no_socket,
        policy=RetryPolicy(max_attempts=args.api_retries, max_elapsed=args.retry_max_wait),
        error_budget=args.poll_error_budget,
        reconcile_delay=max(0.0, args.reconcile_delay),
        verify=args.verify,
    )


@contextlib.asynccontextmanager
async def open_client(args: argparse.Namespace, concurrency: int) -> AsyncIterator[WiroClient]:
    """The API client: the built-in sandbox with ``--sandbox``, else from the environment."""
    limit = max(64, concurrency * 2 + args.download_concurrency)
    if args.sandbox:
        from ..sandbox import Sandbox, SandboxConfig

        config = SandboxConfig(**DEMO_SANDBOX)  # type: ignore[arg-type]
        async with Sandbox(config) as sb:
            client = WiroClient(
                sb.api_key,
                sb.api_secret,
                base_url=sb.base_url,
                socket_url=sb.socket_url,
                connection_limit=limit,
            )
            async with client:
                yield client
        return
    env = dict(os.environ)
    if args.api_base:
        env["WIRO_API_BASE"] = args.api_base
    if args.socket_url:
        env["WIRO_SOCKET_URL"] = args.socket_url
    async with WiroClient.from_env(env, connection_limit=limit) as client:
        yield client


async def _run(
    args: argparse.Namespace, manifest: Manifest, out_dir: Path, whole: Manifest | None
) -> int:
    options = options_from_args(args, manifest, out_dir)
    reporter = make_reporter(args)
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    assert main_task is not None
    runner_box: dict[str, Runner] = {}
    signals = {signal.SIGINT: 130, signal.SIGTERM: 143}

    def on_signal(code: int) -> None:
        runner = runner_box.get("runner")
        if runner is not None and runner.interrupt_code is not None:
            os._exit(code)  # second signal: leave now; the journal is durable
        if runner is not None:
            runner.interrupt_code = code
        print(
            "\nstopping (signal); finished work is recorded. Again to exit at once.",
            file=sys.stderr,
        )
        main_task.cancel()

    for sig, code in signals.items():
        loop.add_signal_handler(sig, on_signal, code)
    interrupted: int | None = None
    try:
        async with open_client(args, options.concurrency) as client:
            runner = Runner(manifest, client, options, reporter)
            runner_box["runner"] = runner
            try:
                result = await runner.run()
            except asyncio.CancelledError:
                interrupted = runner.interrupt_code or 130
                result = None
    except asyncio.CancelledError:
        interrupted = interrupted or 130
        result = None
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        reporter.close()
    code = result.exit_code if result is not None else (interrupted or 130)
    if result is None:
        print(f"interrupted: re-run the same command to resume ({out_dir}).", file=sys.stderr)
    else:
        runner = runner_box["runner"]
        state = runner.ledger.state if runner.ledger is not None else None
        if result.changed or not (out_dir / "index.html").exists():
            _write_gallery(out_dir, manifest, state, whole)
        print_summary(result, quiet=args.quiet)
    if args.notify_url:
        payload = summary_payload(result, exit_code=code, manifest=str(manifest.path))
        await notify(args.notify_url, payload)
    return code


def _write_gallery(
    out_dir: Path, manifest: Manifest, state: LedgerState | None, whole: Manifest | None
) -> None:
    """The folder's gallery; for a shard, also the folder-wide one merging every shard.

    The gallery is a convenience: a failure to write it never changes the run's outcome.
    """
    from ..report.gallery import write_gallery

    with contextlib.suppress(OSError, BatchRunnerError):
        write_gallery(out_dir, manifest, state=state)
        if whole is not None:
            base = out_dir.parent.parent
            write_gallery(base, whole, state=merged_state(base))


def event_loop_factory() -> Any:
    """The asyncio loop, or uvloop with ``BATCH_RUNNER_LOOP=uvloop`` (``pip install
    batch-runner[uvloop]``). uvloop is opt-in: benchmarks/bench_ceiling.py measured no gain
    for this workload (0.94-0.98x jobs/s), the runner's own Python work dominates."""
    if os.environ.get("BATCH_RUNNER_LOOP", "").lower() != "uvloop":
        return None
    try:
        import uvloop
    except ImportError:
        raise UsageError(
            "BATCH_RUNNER_LOOP=uvloop needs uvloop: pip install 'batch-runner[uvloop]'."
        ) from None
    return uvloop.new_event_loop


def main(args: argparse.Namespace) -> int:
    manifest = load_manifest(args.manifest)
    out_dir = output_dir_for(manifest, args.out)
    shard = parse_shard(args.shard) if args.shard else shard_from_env(os.environ, args.shard_count)
    check_layout(out_dir, shard)
    whole = manifest if shard is not None else None
    if shard is not None:
        manifest = dataclasses.replace(manifest, jobs=shard.select(manifest.jobs))
        out_dir = shard.folder(out_dir)
    if args.sandbox and (args.api_base or args.socket_url):
        raise UsageError(
            "--sandbox runs against the built-in sandbox; drop --api-base/--socket-url."
        )
    if args.dry_run:
        print_dry_run(manifest, out_dir, retry_failed=args.retry_failed)
        return 0
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        return runner.run(_run(args, manifest, out_dir, whole))
