"""``batch-runner completion SHELL``: a completion script for bash, zsh or fish, from the
argument parser itself (argcomplete), so every command, flag and choice completes and new
flags need no script change.

The script calls ``batch-runner`` back at each Tab with argcomplete's environment variables
set; :func:`autocomplete` answers those calls before anything else runs.
"""

from __future__ import annotations

import argparse
import os

SHELLS = ("bash", "zsh", "fish")
PROG = "batch-runner"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "completion",
        help="print a shell completion script (bash, zsh, fish)",
        description=(
            "Print a completion script for SHELL. Load it once per shell: "
            'bash: eval "$(batch-runner completion bash)" in ~/.bashrc; '
            'zsh: eval "$(batch-runner completion zsh)" in ~/.zshrc; '
            "fish: batch-runner completion fish > ~/.config/fish/completions/batch-runner.fish"
        ),
    )
    p.add_argument("shell", choices=SHELLS, help="the shell to complete in")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from argcomplete.shell_integration import shellcode

    print(shellcode([PROG], shell=args.shell), end="")
    return 0


def autocomplete(parser: argparse.ArgumentParser) -> None:
    """Answer a completion request from the shell script (and exit); a no-op otherwise."""
    if "_ARGCOMPLETE" not in os.environ:
        return
    import argcomplete

    argcomplete.autocomplete(parser)
