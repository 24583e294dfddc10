"""``batch-runner run``: flags in, :func:`batch_runner.engine.api.run` out, then the gallery,
the summary and the notification.

Signals are the library's (``handle_signals=True``): the first SIGINT or SIGTERM stops the run
with everything durable on disk (exit 130 or 143), a second exits at once.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .args import (
    add_output_flags,
    duration_seconds,
    positive_float,
    positive_int,
)
from .runflags import add_operator_flags, publish_options, watch_options

if TYPE_CHECKING:  # the engine loads only when a run starts: `--help` stays fast
    from ..engine.api import Target
    from ..engine.options import RunOptions
    from ..engine.seal import Basis


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
        help="first status check after submission while polling, seconds (default 1); "
        "later checks back off with the task's age",
    )
    p.add_argument(
        "--poll-max",
        type=positive_float,
        default=30.0,
        help="longest wait between status checks while polling, seconds (default 30)",
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
        "--max-cost-unknown",
        type=positive_float,
        metavar="USD",
        help="with --max-cost: what to count for each job whose model gives no price "
        "(without it, such jobs make --max-cost refuse to start)",
    )
    p.add_argument(
        "--offline",
        action="store_true",
        help="never fetch model definitions; a model with none beside the manifest, in the "
        "user cache or in the package is an error",
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
    add_operator_flags(p)
    add_output_flags(p)
    p.set_defaults(func=main)


def _exit_codes() -> str:
    from . import EXIT_CODES_HELP

    return EXIT_CODES_HELP


def options_from_args(args: argparse.Namespace) -> RunOptions:
    """The flags as run settings; what they leave unset the library decides."""
    from ..engine.options import RunOptions
    from ..engine.track import PollSchedule
    from ..wiro.retry import RetryPolicy

    return RunOptions(
        out_dir=args.out,
        concurrency=args.concurrency,
        download_concurrency=args.download_concurrency,
        poll=PollSchedule(first=args.poll_interval, cap=max(args.poll_max, args.poll_interval)),
        task_timeout=args.task_timeout,
        max_attempts=args.max_attempts,
        retry_failed=args.retry_failed,
        max_cost=args.max_cost,
        max_cost_unknown=args.max_cost_unknown,
        deadline=args.deadline,
        use_socket=not args.no_socket,
        policy=RetryPolicy(max_attempts=args.api_retries, max_elapsed=args.retry_max_wait),
        error_budget=args.poll_error_budget,
        reconcile_delay=max(0.0, args.reconcile_delay),
        verify=args.verify,
        **publish_options(args),
    )


def main(args: argparse.Namespace) -> int:
    from .._memory import tune_malloc

    tune_malloc()  # before the engine starts its worker threads
    if args.log_format != "json":
        return _checked_main(args)
    from ..errors import BatchRunnerError
    from ..report.operate import emit_failure

    try:  # JSON mode: even an error that ends the command is a JSON line and a summary
        return _checked_main(args)
    except BatchRunnerError as exc:
        return emit_failure(exc, manifest=args.manifest, out_dir=args.out)


def _checked_main(args: argparse.Namespace) -> int:
    from ..engine.api import in_loop
    from ..errors import UsageError

    if args.sandbox and (args.api_base or args.socket_url):
        raise UsageError(
            "--sandbox runs against the built-in sandbox; drop --api-base/--socket-url."
        )
    return in_loop(_main(args))


def note(text: str, *, json_lines: bool = False) -> None:
    """A one-line note on stderr (a model definition fetched, a warning about one); a JSON
    line in ``--log-format json`` mode."""
    if json_lines:
        from ..report.machine import JsonLines

        JsonLines(sys.stderr).write("note", message=text)
        return
    from ..errors import printable

    print(printable(text), file=sys.stderr)


async def _main(args: argparse.Namespace) -> int:
    """Start the sandbox when asked, load the manifest (fetching definitions it lacks from
    that service), then dry-run or run."""
    import functools

    from ..engine.api import load_for_run, prepare, started_sandbox

    on_note = functools.partial(note, json_lines=args.log_format == "json")
    lookup = _seal_lookup(args)
    key = lookup[0] if lookup is not None else None
    if lookup is not None and (code := await _sealed(args, *lookup)) is not None:
        return code
    async with started_sandbox(args.sandbox) as sb:
        manifest = await load_for_run(
            args.manifest, sandbox=sb, api_base=args.api_base, offline=args.offline,
            on_note=on_note,
        )  # fmt: skip
        target = prepare(manifest, out_dir=args.out, shard=args.shard, shard_count=args.shard_count)
        if args.dry_run:
            from ..report.summary import print_dry_run

            print_dry_run(target.manifest, target.out_dir, retry_failed=args.retry_failed)
            return 0
        basis = _basis(key, target, sb, args) if key is not None else None
        return await _run(args, target, sb, basis=basis)


def _seal_lookup(args: argparse.Namespace) -> tuple[str, Path] | None:
    """The key a sealed folder must hold for this command to skip the manifest and the
    ledger, and the folder to look in (see :mod:`batch_runner.engine.seal`); None when this
    run never takes that path: a dry run, ``--verify full``, a shard."""
    import os

    from ..engine.seal import seal_lookup
    from ..ledger.shard import shard_from_env

    if args.dry_run or args.verify == "full" or args.shard is not None:
        return None
    try:
        if shard_from_env(os.environ, args.shard_count) is not None:
            return None
    except Exception:  # the full path reports a bad shard environment
        return None
    service = "sandbox" if args.sandbox else (
        args.api_base or os.environ.get("WIRO_API_BASE") or "default"
    )  # fmt: skip
    return seal_lookup(
        Path(args.manifest),
        service=service,
        publish=args.publish,
        public_url=args.publish_public_url,
        out=Path(args.out) if args.out is not None else None,
    )


def _basis(key: str, target: Target, sandbox: object, args: argparse.Namespace) -> Basis | None:
    """What this run's jobs were built from, for the seal (None: not sealable)."""
    from ..engine.api import resolver_for
    from ..engine.seal import basis_for

    if target.shard is not None:
        return None
    resolver = resolver_for(sandbox=sandbox, api_base=args.api_base, offline=True)
    places = [folder for _, folder in resolver.places(target.manifest.path.parent)]
    return basis_for(key, target.manifest, places)


async def _sealed(args: argparse.Namespace, key: str, out_dir: Path) -> int | None:
    """A re-run of the sealed folder ``out_dir`` with nothing to do: the summary, metrics
    and notifications as for any run, without loading the manifest or the ledger."""
    import asyncio
    import os

    from ..engine.seal import sealed_rerun, started_event
    from ..report.operate import RunWatch

    options_from_args(args)  # bad flags are refused as on the full path
    found = await asyncio.to_thread(sealed_rerun, out_dir, key, publish=args.publish)
    if found is None:
        return None
    result, last_success = found
    manifest = Path(os.path.abspath(args.manifest))
    watch = RunWatch(manifest=manifest, shard=None, **watch_options(args))
    try:
        watch.reporter.event(started_event(result, last_success))
        watch.reporter.update(result.counts, total=result.total, spent=result.spent)
    finally:
        watch.reporter.close()
    return await watch.finish(result)


async def _run(
    args: argparse.Namespace,
    target: Target,
    sandbox: object = None,
    *,
    basis: Basis | None = None,
) -> int:
    from ..engine.api import run
    from ..errors import BatchRunnerError
    from ..report.gallery import write_run_gallery
    from ..report.operate import RunWatch

    shard = target.shard.folder_name if target.shard is not None else None
    options = options_from_args(args)  # checked before the watchers start
    watch = RunWatch(manifest=target.manifest.path, shard=shard, **watch_options(args))
    reporter = watch.reporter
    try:
        try:
            result = await run(
                target,
                options=options,
                sandbox=sandbox if sandbox is not None else False,
                api_base=args.api_base,
                socket_url=args.socket_url,
                reporter=reporter,
                handle_signals=True,
            )
        finally:
            reporter.close()
    except BatchRunnerError as exc:
        await watch.aborted(exc, out_dir=target.out_dir)  # metrics, notifications, JSON
        if watch.json:
            return exc.exit_code
        raise  # printed as for any command
    write_run_gallery(result, links=args.gallery_links, live=watch.gallery)
    if basis is not None:
        import asyncio

        from ..engine.seal import seal_folder

        await asyncio.to_thread(seal_folder, result, basis)
    return await watch.finish(result)
