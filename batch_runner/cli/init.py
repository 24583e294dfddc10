"""``batch-runner init [--model OWNER/MODEL] [PATH]``: write a starter manifest for a model.

The model's definition is found as ``validate`` finds it (a ``models/`` folder beside
``PATH``, the user cache, the package, then the service or, with ``--sandbox``, the built-in
sandbox); the library writes the manifest and its editor schema
(:mod:`batch_runner.manifest.scaffold`), and the manifest is then loaded back as ``validate``
would load it, so what ``init`` prints is ``validate``'s summary line.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(subparsers: Any) -> None:
    from .validate import add_definition_flags

    parser = subparsers.add_parser(
        "init",
        help="write a starter manifest for a model",
        description=(
            "Write a starter manifest for a model, valid as written: an example job from the "
            "model's own examples, every input shown with its type, default, allowed values "
            "and limits, and beside it <name>.schema.json, a JSON Schema of manifests for "
            "this model that the manifest's first line points editors to (completion and "
            "checks as you type). Existing files are never replaced without --force."
        ),
    )
    parser.add_argument(
        "path",
        nargs="?",
        metavar="PATH",
        help="the manifest to write (default: <model name>.yaml; inside PATH when it is a "
        "folder); '-' prints it instead, without the schema file",
    )
    parser.add_argument(
        "--model",
        metavar="OWNER/MODEL",
        help="the Wiro model (default: PixVerse/image-to-video-v5)",
    )
    parser.add_argument("--force", action="store_true", help="replace files that exist")
    add_definition_flags(parser)
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from ..engine.api import in_loop
    from ..errors import UsageError

    if args.sandbox and args.api_base:
        raise UsageError("--sandbox uses the built-in sandbox; drop --api-base.")
    return in_loop(_init(args))


async def _init(args: argparse.Namespace) -> int:
    import asyncio
    from pathlib import Path

    from ..engine.api import resolver_for, started_sandbox
    from ..manifest.job import DEFAULT_MODEL
    from ..manifest.loader import load_manifest
    from ..manifest.scaffold import check_free, paths_for, starter_files, target_path, write_new
    from ..report.summary import manifest_summary
    from .run import note

    model = args.model or DEFAULT_MODEL
    path = target_path(args.path, model)
    if path is not None:
        check_free(paths_for(path), force=args.force)  # before anything is fetched
    flags = (
        ["--sandbox"] if args.sandbox else ["--api-base", args.api_base] if args.api_base else []
    )
    async with started_sandbox(args.sandbox) as sb:
        resolver = resolver_for(
            sandbox=sb, api_base=args.api_base, offline=args.offline, on_note=note
        )
        folder = Path.cwd() if path is None else Path(path.parent).resolve()
        definition = await asyncio.to_thread(resolver.resolve, model, folder)
        files, plan = starter_files(definition, path, flags)
        for problem in plan.problems:
            note(f"warning: the starter manifest needs a hand: {problem}")
        if path is None:
            sys.stdout.write(files[None])
            return 0
        written = write_new({p: text for p, text in files.items() if p is not None},
                            force=args.force)  # fmt: skip
        print(f"wrote {' and '.join(str(p) for p in written)}")
        manifest = await asyncio.to_thread(load_manifest, path, resolver=resolver)
    print(manifest_summary(str(path), manifest))
    return 0
