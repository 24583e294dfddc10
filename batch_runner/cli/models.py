"""``batch-runner models list|show|pull``: the service's models, to write manifests with.

``list [SEARCH]`` pages through ``/Tool/List``; ``show OWNER/MODEL`` prints a model's inputs
(name, type, required, default, allowed values, limits) and prices; ``pull OWNER/MODEL...``
fetches definitions into the user cache, or with ``--to DIR`` into a project's folder (such
as ``models/`` beside its manifests, to pin and review them).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .args import positive_int


def register(subparsers: Any) -> None:
    from .validate import add_definition_flags

    parser = subparsers.add_parser(
        "models",
        help="list, show and pull model definitions",
        description="The models the service describes: list them, show one's inputs and "
        "prices, pull definitions into the user cache or a project's models/ folder.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    listing = actions.add_parser("list", help="models of the catalogue (/Tool/List)")
    listing.add_argument("search", nargs="?", default="", help="text in a title or name")
    listing.add_argument("--category", action="append", default=[], help="e.g. text-to-video")
    listing.add_argument("--limit", type=positive_int, default=50, help="rows (default 50)")
    listing.add_argument("--json", action="store_true", help="the records as JSON")
    add_definition_flags(listing)
    listing.set_defaults(func=run_list)
    show = actions.add_parser("show", help="a model's inputs and prices")
    show.add_argument("model", metavar="OWNER/MODEL")
    show.add_argument("--dir", type=Path, help="a manifest folder whose models/ comes first")
    show.add_argument("--json", action="store_true", help="the definition file as JSON")
    add_definition_flags(show)
    show.set_defaults(func=run_show)
    pull = actions.add_parser("pull", help="fetch definitions into the cache or a folder")
    pull.add_argument("models", nargs="+", metavar="OWNER/MODEL")
    pull.add_argument("--to", type=Path, metavar="DIR", help="write into DIR/<owner>/<name>.json "
                      "(e.g. models/ beside the manifests) instead of the user cache")  # fmt: skip
    pull.add_argument("--sandbox", action="store_true", help="from the built-in sandbox")
    pull.add_argument("--api-base", help="API base URL (default: $WIRO_API_BASE or Wiro's)")
    pull.set_defaults(func=run_pull)
    parser.set_defaults(func=lambda _args: parser.print_help() or 2)


def _check(args: argparse.Namespace) -> None:
    from ..errors import UsageError

    if getattr(args, "sandbox", False) and getattr(args, "api_base", None):
        raise UsageError("--sandbox uses the built-in sandbox; drop --api-base.")


def run_list(args: argparse.Namespace) -> int:
    from ..engine.api import in_loop

    _check(args)
    return in_loop(_list(args))


async def _list(args: argparse.Namespace) -> int:
    import json

    from ..engine.api import open_client, resolver_for, started_sandbox
    from ..models.catalogue import catalogue_page
    from ..report.models import render_list

    if args.offline:
        from ..models.catalogue import local_catalogue

        resolver = resolver_for(api_base=args.api_base, offline=True)
        records, names = local_catalogue(resolver, Path.cwd(), args.search)
        print(render_list(len(names), records, names))
        return 0
    async with (
        started_sandbox(args.sandbox) as sb,
        open_client(
            concurrency=1, download_concurrency=1, sandbox=sb or False, api_base=args.api_base
        ) as client,  # fmt: skip
    ):
        total, records, names = await catalogue_page(
            client, search=args.search, categories=args.category, limit=args.limit
        )
    if args.json:
        print(json.dumps({"total": total, "tool": records}, indent=2))
    else:
        print(render_list(total, records, names))
    return 0


def run_show(args: argparse.Namespace) -> int:
    from ..engine.api import in_loop

    _check(args)
    return in_loop(_show(args))


async def _show(args: argparse.Namespace) -> int:
    import asyncio
    import json

    from ..engine.api import resolver_for, started_sandbox
    from ..report.models import render_definition
    from .run import note

    async with started_sandbox(args.sandbox) as sb:
        resolver = resolver_for(
            sandbox=sb, api_base=args.api_base, offline=args.offline, on_note=note
        )
        folder = (args.dir or Path.cwd()).resolve()
        definition = await asyncio.to_thread(resolver.resolve, args.model, folder)
    if args.json:
        print(json.dumps(definition.to_file(), indent=2, ensure_ascii=False))
    else:
        print(render_definition(definition))
    return 0


def run_pull(args: argparse.Namespace) -> int:
    from ..engine.api import in_loop
    from ..errors import UsageError

    _check(args)
    if args.sandbox and args.to is None:
        raise UsageError(
            "The built-in sandbox's definitions are never cached (its catalogue is not the "
            "service's): give --to DIR to write them into a folder."
        )
    return in_loop(_pull(args))


async def _pull(args: argparse.Namespace) -> int:
    from ..engine.api import open_client, resolver_for, started_sandbox
    from ..errors import printable
    from ..models.catalogue import pull
    from ..report.models import changes

    folder = args.to
    if folder is None:
        folder = resolver_for(api_base=args.api_base).cache_folder
    assert folder is not None
    async with (
        started_sandbox(args.sandbox) as sb,
        open_client(
            concurrency=1, download_concurrency=1, sandbox=sb or False, api_base=args.api_base
        ) as client,  # fmt: skip
    ):
        for model in args.models:
            done = await pull(client, model, folder)
            d = done.definition
            what = f"{len(d.items)} inputs, {len(d.tiers)} price tiers"
            if done.previous is None:
                status = "new"
            else:
                found = changes(done.previous, d)
                status = "; ".join(found) if found else "unchanged"
            print(printable(f"pulled {model} into {done.path} ({what}): {status}"))
            for warning in d.warnings:
                print(printable(f"warning: {model}: {warning}"), file=sys.stderr)
    return 0
