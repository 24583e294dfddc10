"""The library's entry points: run a manifest, from a CLI, a notebook or a pipeline.

:func:`run` owns every policy the command line used to hold: the concurrency precedence
(caller, manifest, default), the HTTP connection limit, which shard this worker runs (the
caller's, else the array-job engine's environment), the built-in sandbox, and, when asked
(``handle_signals=True``, as arq's worker does), SIGINT/SIGTERM. The CLI only turns flags into
arguments of these functions.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ..errors import UsageError
from ..ledger.shard import Shard, check_layout, parse_shard, shard_from_env
from ..manifest.loader import Manifest, load_manifest
from ..models.fetch import ClientFetcher
from ..models.resolver import Note, Resolver
from ..models.store import public_base, service_key
from ..wiro.client import WiroClient
from .options import RunOptions, connection_limit
from .reporting import NullReporter, Reporter, RunEvent
from .result import RunResult
from .runner import Runner

T = TypeVar("T")

#: Sandbox timing for ``sandbox=True``: quick enough for a demo, every status still visible.
DEMO_SANDBOX: dict[str, Any] = {"queue_seconds": 0.3, "run_seconds": (1.5, 3.0)}
#: Exit codes of the signals a run handles when asked to.
SIGNAL_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


@dataclass(frozen=True)
class Target:
    """Which jobs this worker runs, and where: the whole manifest, or one shard of it.

    For a shard, ``manifest`` holds only the shard's jobs and ``out_dir`` is the shard's own
    folder (``DIR/shards/K-of-N``); ``whole`` is the full manifest and ``base`` is ``DIR``.
    """

    manifest: Manifest
    out_dir: Path
    shard: Shard | None = None
    whole: Manifest | None = None
    base: Path | None = None


def prepare(
    manifest: Manifest | str | os.PathLike[str],
    *,
    out_dir: str | os.PathLike[str] | None = None,
    shard: Shard | str | None = None,
    shard_count: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> Target:
    """Load the manifest if given a path, pick the output folder and the shard.

    ``shard`` is a :class:`Shard` or ``"K/N"``; without it the environment of an array-job
    engine (AWS Batch, Slurm, Kubernetes Indexed Jobs with ``shard_count``) decides, as the
    CLI does. Mixing sharded and unsharded runs in one folder is refused (UsageError).
    """
    if isinstance(manifest, Manifest):
        loaded = manifest
    else:
        loaded = load_manifest(Path(manifest), resolver=Resolver.from_env(environ))
    folder = RunOptions(out_dir=Path(out_dir) if out_dir is not None else None).resolved(loaded)
    env = os.environ if environ is None else environ
    if isinstance(shard, str):
        shard = parse_shard(shard)
    if shard is None:
        shard = shard_from_env(env, shard_count)
    base = folder.folder
    check_layout(base, shard)
    if shard is None:
        return Target(loaded, base)
    mine = dataclasses.replace(loaded, jobs=shard.select(loaded.jobs))
    return Target(mine, shard.folder(base), shard, loaded, base)


def resolver_for(
    *,
    sandbox: Any = None,
    api_base: str | None = None,
    offline: bool = False,
    environ: Mapping[str, str] | None = None,
    on_note: Note | None = None,
    client: WiroClient | None = None,
) -> Resolver:
    """Where a run's model definitions come from: the project, the user cache and the
    package, then the service (``api_base``, else ``WIRO_API_BASE``; or the service and
    credentials of ``client``) or, given a running ``sandbox``, that sandbox (never cached:
    its catalogue is not the service's)."""
    if client is not None and sandbox is None:
        creds, base = client.credentials, client.base_url
        fetcher = ClientFetcher(
            lambda: WiroClient(creds.api_key, creds.api_secret, base_url=base),
            where=public_base(base),
            cache_key=service_key(base),
            loop=asyncio.get_running_loop(),
        )
        return Resolver(fetcher=fetcher, offline=offline, on_note=on_note)
    if sandbox is None:
        return Resolver.from_env(environ, api_base=api_base, offline=offline, on_note=on_note)
    sb = sandbox
    fetcher = ClientFetcher(
        lambda: WiroClient(sb.api_key, sb.api_secret, base_url=sb.base_url),
        where="the built-in sandbox",
        cache_key=None,
        loop=asyncio.get_running_loop(),
    )
    return Resolver(fetcher=fetcher, offline=offline, on_note=on_note)


async def load_for_run(
    path: str | os.PathLike[str],
    *,
    sandbox: Any = None,
    api_base: str | None = None,
    offline: bool = False,
    environ: Mapping[str, str] | None = None,
    on_note: Note | None = None,
    client: WiroClient | None = None,
) -> Manifest:
    """Load a manifest from async code: in a worker thread, so that definitions can be
    fetched from a service running in this loop (the in-process sandbox)."""
    resolver = resolver_for(
        sandbox=sandbox,
        api_base=api_base,
        offline=offline,
        environ=environ,
        on_note=on_note,
        client=client,
    )
    return await asyncio.to_thread(load_manifest, Path(path), resolver=resolver)


@contextlib.asynccontextmanager
async def started_sandbox(sandbox: bool | Any) -> AsyncIterator[Any]:
    """The sandbox a run asked for, running: None for none, a running ``Sandbox`` as it is,
    else one started here (``True``: the demo's timing; a ``SandboxConfig``: that)."""
    if sandbox is False or sandbox is None:
        yield None
        return
    from ..sandbox import Sandbox, SandboxConfig

    if isinstance(sandbox, Sandbox):
        yield sandbox
        return
    config = sandbox if isinstance(sandbox, SandboxConfig) else SandboxConfig(**DEMO_SANDBOX)
    async with Sandbox(config) as sb:
        yield sb


@contextlib.asynccontextmanager
async def open_client(
    *,
    concurrency: int,
    download_concurrency: int,
    sandbox: bool | Any = False,
    api_base: str | None = None,
    socket_url: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> AsyncIterator[WiroClient]:
    """A client for a run: the built-in sandbox (``sandbox=True``, a ``SandboxConfig``, or
    a running ``Sandbox``), else the service named by the arguments and ``WIRO_*``
    variables."""
    limit = connection_limit(concurrency, download_concurrency)
    if sandbox is not False and sandbox is not None:
        if api_base or socket_url:
            raise UsageError(
                "--sandbox runs against the built-in sandbox; drop --api-base/--socket-url."
            )
        async with started_sandbox(sandbox) as sb:
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
    env = dict(os.environ if environ is None else environ)
    if api_base:
        env["WIRO_API_BASE"] = api_base
    if socket_url:
        env["WIRO_SOCKET_URL"] = socket_url
    async with WiroClient.from_env(env, connection_limit=limit) as client:
        yield client


async def run(
    manifest: Manifest | Target | str | os.PathLike[str],
    *,
    options: RunOptions | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    concurrency: int | None = None,
    client: WiroClient | None = None,
    sandbox: bool | Any = False,
    api_base: str | None = None,
    socket_url: str | None = None,
    shard: Shard | str | None = None,
    shard_count: int | None = None,
    reporter: Reporter | None = None,
    handle_signals: bool = False,
    environ: Mapping[str, str] | None = None,
    offline: bool = False,
) -> RunResult:
    """Run every job of ``manifest`` (a path, a loaded :class:`Manifest`, or a
    :class:`Target` from :func:`prepare`) and return how it went; re-running the same call
    resumes.

    ``client`` is used as given (the caller owns it); otherwise one is opened for the run:
    ``sandbox=True`` starts the built-in sandbox in this process, else the service comes from
    ``api_base``/``socket_url`` and the ``WIRO_*`` environment variables. ``out_dir`` and
    ``concurrency`` override ``options``. ``handle_signals`` installs SIGINT/SIGTERM handlers
    for the run (a first signal stops it cleanly and the result says ``interrupted``, exit
    130/143; a second leaves the process at once, the journal still durable). Errors are
    :class:`~batch_runner.errors.BatchRunnerError` subclasses with the CLI's exit code.

    A manifest given as a path is loaded here; models without a local definition are
    fetched from the service (or the sandbox) unless ``offline``.
    """
    opts = options or RunOptions()
    if out_dir is not None or concurrency is not None:
        opts = dataclasses.replace(
            opts,
            out_dir=Path(out_dir) if out_dir is not None else opts.out_dir,
            concurrency=concurrency if concurrency is not None else opts.concurrency,
        )
    if client is not None and (sandbox or api_base or socket_url):
        raise UsageError("Give either a client or sandbox/api_base/socket_url, not both.")
    async with started_sandbox(sandbox if client is None else False) as sb:
        if isinstance(manifest, Target):
            target = manifest  # already placed by prepare(): never sharded a second time
        else:
            if not isinstance(manifest, Manifest):
                manifest = await load_for_run(
                    manifest,
                    sandbox=sb,
                    api_base=api_base,
                    offline=offline,
                    environ=environ,
                    client=client,
                )
            target = prepare(
                manifest,
                out_dir=opts.out_dir,
                shard=shard,
                shard_count=shard_count,
                environ=environ,
            )
        return await _run_target(
            target, opts, client, sb, api_base, socket_url, reporter, handle_signals, environ
        )


async def _run_target(
    target: Target,
    opts: RunOptions,
    client: WiroClient | None,
    sandbox: Any,
    api_base: str | None,
    socket_url: str | None,
    reporter: Reporter | None,
    handle_signals: bool,
    environ: Mapping[str, str] | None,
) -> RunResult:
    opts = dataclasses.replace(opts, out_dir=target.out_dir).resolved(target.manifest)
    sandbox = sandbox if sandbox is not None else False
    stop = _Interrupt(asyncio.current_task(), reporter)
    with _signals(stop) if handle_signals else contextlib.nullcontext():
        try:
            async with _client_for(client, opts, sandbox, api_base, socket_url, environ) as c:
                stop.runner = Runner(target.manifest, c, opts, reporter or NullReporter())
                result = await stop.runner.run()
        except asyncio.CancelledError:
            if stop.code is None or stop.task is None:
                raise  # cancelled by someone else: not ours to swallow
            stop.task.uncancel()
            result = stop.result(target)
    result.manifest, result.whole, result.shard_base = target.manifest, target.whole, target.base
    return result


def _client_for(
    client: WiroClient | None,
    opts: RunOptions,
    sandbox: bool | Any,
    api_base: str | None,
    socket_url: str | None,
    environ: Mapping[str, str] | None,
) -> contextlib.AbstractAsyncContextManager[WiroClient]:
    """The caller's client as it is (the caller closes it), else one opened for the run."""
    if client is not None:
        if sandbox or api_base or socket_url:
            raise UsageError("Give either a client or sandbox/api_base/socket_url, not both.")
        return contextlib.nullcontext(client)
    return open_client(
        concurrency=opts.slots,
        download_concurrency=opts.download_concurrency,
        sandbox=sandbox,
        api_base=api_base,
        socket_url=socket_url,
        environ=environ,
    )


class _Interrupt:
    """A run's stop button: which signal asked (``code``), and what to stop."""

    def __init__(self, task: asyncio.Task[Any] | None, reporter: Reporter | None = None) -> None:
        self.task = task
        self.reporter = reporter
        self.code: int | None = None
        self.runner: Runner | None = None

    def press(self, code: int) -> None:
        if self.code is not None:
            os._exit(code)  # second signal: leave now; the journal is durable
        self.code = code
        text = "stopping (signal); finished work is recorded. Again to exit at once."
        if self.reporter is not None:  # the run's own channel (JSON lines stay JSON)
            self.reporter.event(RunEvent("stopping", message=text, level="warning"))
        else:
            print(f"\n{text}", file=sys.stderr)
        if self.runner is not None:
            self.runner.interrupt(code)
        elif self.task is not None:
            self.task.cancel()  # still starting (the sandbox, the client): nothing to record

    def result(self, target: Target) -> RunResult:
        if self.runner is not None:
            return self.runner.interrupted_result()
        return RunResult(
            exit_code=self.code or 130,
            counts={},
            total=len(target.manifest.jobs),
            spent=0.0,
            wall_seconds=0.0,
            stop_reason="interrupted",
            failures=[],
            out_dir=target.out_dir,
            interrupted=True,
        )


def run_sync(manifest: Manifest | Target | str | os.PathLike[str], **kwargs: Any) -> RunResult:
    """:func:`run` in a fresh event loop, for scripts. (In Jupyter, whose loop is already
    running, ``await batch_runner.run(...)`` instead.)"""
    return in_loop(run(manifest, **kwargs))


def in_loop(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` in a fresh event loop (uvloop when ``BATCH_RUNNER_LOOP=uvloop``)."""
    with asyncio.Runner(loop_factory=event_loop_factory()) as loop:
        return loop.run(coro)


@contextlib.contextmanager
def _signals(stop: _Interrupt) -> Iterator[None]:
    """SIGINT/SIGTERM for the duration of a run: the first interrupts it cleanly, the second
    exits at once (every durable step is already fsync'd)."""
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    try:
        for sig, code in SIGNAL_CODES.items():
            loop.add_signal_handler(sig, stop.press, code)
            installed.append(sig)
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
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
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory
