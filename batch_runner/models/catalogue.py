"""The ``models`` commands' library side: the catalogue page, pulling definitions into a
folder, and finding one to show. The CLI only parses flags and prints what these return."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ModelError, NotFoundError
from ..wiro.client import WiroClient
from .definition import ModelDefinition, model_problem
from .fetch import fetch_definition, fetch_policy, search_names, tool_names
from .items import DefinitionProblem
from .resolver import Resolver, closest
from .store import find_file, known_models, read_definition, write_definition


@dataclass(frozen=True)
class Pulled:
    """One pulled definition: where it was written, and the one it replaced (if any)."""

    definition: ModelDefinition
    path: Path
    previous: ModelDefinition | None


async def catalogue_page(
    client: WiroClient, *, search: str = "", categories: list[str] | None = None, limit: int = 50
) -> tuple[int, list[dict[str, Any]], list[str]]:
    """One page of ``/Tool/List``: the total, the summary records and their model names."""
    total, records = await fetch_policy().call(
        lambda: client.tool_list(search=search, limit=limit, categories=categories)
    )
    named = [(n, r) for r, n in zip(records, tool_names(records), strict=False)]
    return total, [r for _n, r in named], [n for n, _r in named]


async def pull(client: WiroClient, model: str, folder: Path) -> Pulled:
    """Fetch ``model``'s definition now and write it into ``folder`` (``<owner>/<name>.json``)."""
    problem = model_problem(model)
    if problem is not None:
        raise ModelError(f"model {model!r}: {problem}")
    try:
        definition = await fetch_definition(client, model)
    except NotFoundError:
        names = [n for part in dict.fromkeys(model.split("/"))
                 for n in await search_names(client, part)]  # fmt: skip
        hint = closest(model, names)
        close = f"; did you mean {hint!r}?" if hint else ""
        raise ModelError(f"unknown model {model!r}: the service has no such model{close}") from None
    except DefinitionProblem as exc:
        raise ModelError(
            f"the service describes {model!r} in a way batch-runner cannot use: {exc}"
        ) from None
    previous = None
    existing = find_file(folder, model)
    if existing is not None:
        try:
            previous = read_definition(existing)
        except DefinitionProblem:
            previous = None
    if definition.model != model:
        from dataclasses import replace

        definition = replace(definition, model=model)
    path = write_definition(folder, definition)
    return Pulled(definition, path, previous)


def local_catalogue(
    resolver: Resolver, project: Path | None, search: str = ""
) -> tuple[list[dict[str, Any]], list[str]]:
    """The definitions on disk (project, cache, package; first found wins), as catalogue
    records and names, for ``models list --offline``."""
    records: list[dict[str, Any]] = []
    names: list[str] = []
    for _what, folder in resolver.places(project):
        for name in known_models(folder):
            if name in names or (search and search.lower() not in name.lower()):
                continue
            path = find_file(folder, name)
            try:
                definition = read_definition(path) if path is not None else None
            except DefinitionProblem:
                continue
            if definition is not None:
                names.append(name)
                records.append(definition.tool)
    return records, names
