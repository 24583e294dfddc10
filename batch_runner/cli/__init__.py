"""The ``batch-runner`` command line: parses arguments and calls the library, nothing more.

Each subcommand lives in its own module, which exposes ``register(subparsers)``; the
parser it adds sets ``func`` to a callable taking the parsed namespace and returning the
exit code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import BatchRunnerError

EXIT_CODES_HELP = """\
exit codes:
  0    every job succeeded (validate: every manifest is valid)
  1    the run finished and some jobs failed or were cancelled
  2    bad usage, invalid manifest, or credentials rejected
  3    another run holds this output folder
  4    stopped early with work left (insufficient balance, --max-cost, --deadline,
       outputs not published)
  130  interrupted by SIGINT (Ctrl-C)
  143  interrupted by SIGTERM
"""


#: ``sandbox``'s line in the command list, so that other commands need not import the
#: sandbox's catalogue and fault names (25 ms of every start-up) to describe it.
SANDBOX_HELP = "serve a local Wiro-compatible API (demo, tests)"


def build_parser(*, only: str | None = None) -> argparse.ArgumentParser:
    """The whole parser. ``only`` names the command about to run: then the ``sandbox``
    subcommand's own options are added only if it is that command (None: every command in
    full, as for ``--help`` and shell completion)."""
    from . import cancel, completion, init, models, status, validate
    from . import run as run_cmd

    parser = argparse.ArgumentParser(
        prog="batch-runner",
        description="Run a YAML manifest of generation jobs on any Wiro model, resumably.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"batch-runner {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="show tracebacks and debug logs"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (run_cmd, validate, init, models, status, cancel):
        module.register(subparsers)
    if only is not None and only != "sandbox":
        subparsers.add_parser("sandbox", help=SANDBOX_HELP)
    else:
        from ..sandbox import cli as sandbox_cli

        sandbox_cli.register(subparsers)
    completion.register(subparsers)
    for sub in subparsers.choices.values():  # -v works after the subcommand too
        sub.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                         help="show tracebacks and debug logs")  # fmt: skip
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_given = sys.argv[1:] if argv is None else list(argv)
    if args_given == ["--version"]:  # answered before the subcommands' modules are imported
        print(f"batch-runner {__version__}")
        return 0
    import os

    from .completion import autocomplete

    command = next((word for word in args_given if not word.startswith("-")), None)
    parser = build_parser(only=None if "_ARGCOMPLETE" in os.environ else command)
    autocomplete(parser)  # a Tab in a shell with the completion script: answer and exit
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    if getattr(args, "verbose", False):
        import logging

        logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(name)s %(message)s")
    try:
        code: int = func(args)
        return code
    except BatchRunnerError as exc:
        if getattr(args, "verbose", False):
            import traceback

            traceback.print_exc()
        for issue in getattr(exc, "issues", ()):
            print(issue, file=sys.stderr)
        print(f"error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
