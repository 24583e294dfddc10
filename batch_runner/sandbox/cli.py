"""The ``batch-runner sandbox`` subcommand: serve the emulator until SIGINT/SIGTERM.

It prints exactly one line on stdout (``base_url=... socket_url=...``) so scripts can read
where to point a client; everything else goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import textwrap

from .config import (
    DYNAMICPRICE_STYLES,
    ERROR_STYLES,
    FAULT_NAMES,
    SOCKET_MODES,
    FaultConfig,
    SandboxConfig,
)
from .models import MODELS

DEFAULT_PORT = 8765

DESCRIPTION = """\
Serve a local, Wiro-compatible API: /Run, /Task/Detail, /Task/List, /Task/Cancel,
/Task/Kill, /File/Upload, /Tool/Detail, /Tool/List, output downloads and the task
WebSocket, for the models of the sandbox's catalogue (PixVerse/image-to-video-v5 is the
default; /Tool/Detail describes each one's inputs and prices). Tasks take --queue-seconds
plus --run-seconds and "generate" real files (MP4 video, PNG images, WAV audio). Point a
client at the printed base URL with the same key and secret.
"""

FAULTS_HELP = (
    "models:\n"
    + textwrap.fill(", ".join(MODELS), width=88, initial_indent="  ", subsequent_indent="  ")
    + "\n\nfaults (--fault NAME=RATE, rate 0..1, repeatable; all=RATE sets every one):\n"
    + textwrap.fill(", ".join(FAULT_NAMES), width=88, initial_indent="  ", subsequent_indent="  ")
    + "\n  slow_download_seconds=S sets how long a slow download stalls (default 5).\n"
    "  ws_final_withheld: a task's final socket frames are never sent (Detail still ends).\n"
)


def _rate_spec(text: str) -> str:
    """argparse type for ``--fault``: checked now so a typo fails before serving."""
    try:
        FaultConfig.parse([text])
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _run_seconds(text: str) -> tuple[float, float]:
    """``A`` or ``A-B`` seconds."""
    low_text, _, high_text = text.partition("-")
    try:
        low = float(low_text)
        high = float(high_text) if high_text else low
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not SECONDS or LOW-HIGH") from None
    if low < 0 or high < low:
        raise argparse.ArgumentTypeError(f"{text!r}: need 0 <= LOW <= HIGH")
    return low, high


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value < 0 or value != value:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 0")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 1")
    return value


def _http_error(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not 400 <= value <= 599:
        raise argparse.ArgumentTypeError(f"{text!r} must be an HTTP error status, 400 to 599")
    return value


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``sandbox`` subcommand."""
    parser = subparsers.add_parser(
        "sandbox",
        help="serve a local Wiro-compatible API (demo, tests)",
        description=DESCRIPTION,
        epilog=FAULTS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    add("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 = any)")
    add("--api-key", default=SandboxConfig.api_key, help="the project's API key")
    add("--api-secret", default="sandbox-secret", help="the project's API secret")
    add("--no-secret", action="store_true", help="API-key-only project (no signatures)")
    add("--balance", type=_non_negative, default=SandboxConfig.balance_usd, metavar="USD")
    add("--concurrency-limit", type=_positive_int, default=None, metavar="N",
        help="fixed limit (default: the service's balance formula)")  # fmt: skip
    add("--seed", type=int, default=0, help="seed for every random choice (default 0)")
    add("--run-seconds", type=_run_seconds, default=(1.0, 2.0), metavar="A[-B]",
        help="task run time, uniform in A..B (default 1-2; 0 = near-instant)")  # fmt: skip
    add("--queue-seconds", type=_non_negative, default=0.2, metavar="S")
    add("--fault", type=_rate_spec, action="append", default=[], metavar="NAME=RATE")
    add("--error-style", choices=ERROR_STYLES, default="http",
        help="http: errors answer 400/401/404; 200: every error is HTTP 200")  # fmt: skip
    add("--ws-replay", action="store_true", help="send a new subscriber the current status")
    add("--reject-reused-nonces", action="store_true", help="answer 401 to a reused nonce")
    add("--output-name", default=None, help="override the output file name (hostile tests)")
    add("--socket-mode", choices=SOCKET_MODES, default="normal",
        help="normal; refuse: answer every socket upgrade with HTTP --socket-refuse-status; "
        "silent: accept connections and subscriptions, send no frame")  # fmt: skip
    add("--socket-refuse-status", type=_http_error, default=404, metavar="STATUS",
        help="HTTP status of a refused socket upgrade, 400..599 (default 404)")  # fmt: skip
    add("--dynamicprice-style", choices=DYNAMICPRICE_STYLES, default="string",
        help="serve a tool's dynamicprice as JSON text (default) or as a list")  # fmt: skip
    parser.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> SandboxConfig:
    """The configuration the parsed flags describe (ValueError when inconsistent)."""
    return SandboxConfig(
        api_key=args.api_key,
        api_secret=None if args.no_secret else args.api_secret,
        balance_usd=args.balance,
        concurrency_limit=args.concurrency_limit,
        queue_seconds=args.queue_seconds,
        run_seconds=args.run_seconds,
        seed=args.seed,
        faults=FaultConfig.parse(args.fault),
        error_style=args.error_style,
        ws_replay=args.ws_replay,
        output_name=args.output_name,
        reject_reused_nonces=args.reject_reused_nonces,
        socket_mode=args.socket_mode,
        socket_refuse_status=args.socket_refuse_status,
        dynamicprice_style=args.dynamicprice_style,
    )


async def serve(config: SandboxConfig, host: str, port: int) -> None:
    """Serve until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    from .server import Sandbox

    sandbox = Sandbox(config)
    await sandbox.start(host, port)
    try:
        print(f"sandbox ready base_url={sandbox.base_url} socket_url={sandbox.socket_url}")
        sys.stdout.flush()
        mode = "signature" if config.api_secret else "API-key only"
        faults = config.faults.enabled()
        socket = "" if config.socket_mode == "normal" else f"socket: {config.socket_mode}; "
        print(
            f"project: {mode}, balance ${config.balance_usd:.2f}; "
            f"faults: {faults or 'none'}; {socket}Ctrl-C to stop",
            file=sys.stderr,
        )
        await stop.wait()
    finally:
        await sandbox.stop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signum)


def run(args: argparse.Namespace) -> int:
    """Entry point of the subcommand; returns the exit code."""
    try:
        config = config_from_args(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve(config, args.host, args.port))
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 1
    return 0
