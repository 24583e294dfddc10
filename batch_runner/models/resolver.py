"""Finding a model's definition: the project's pinned file, the user cache, the package, and
only then the service (fetched once, cached, and said so in one line).

The manifest loader asks a :class:`Resolver` for the definitions of the models a manifest
names; everything with I/O (files, the network) happens here, at the edge, so the loader
stays a plain function of the manifest and its definitions. ``offline`` forbids fetching:
a missing definition is then an error naming the ``batch-runner models pull`` command.
"""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from ..errors import ApiError, BatchRunnerError, ModelError, NotFoundError
from .definition import ModelDefinition, model_problem
from .fetch import ClientFetcher, Fetcher
from .items import DefinitionProblem
from .store import (
    DEFAULT_API_BASE,
    PROJECT_DIR,
    cache_root,
    find_file,
    known_models,
    public_base,
    read_definition,
    service_key,
    shipped_dir,
    write_definition,
)

log = logging.getLogger("batch_runner.models")

Note = Callable[[str], None]


def closest(name: str, known: Iterable[str]) -> str | None:
    """The known model closest to a mistyped one (case, '-'/'_' and small typos)."""
    known = list(dict.fromkeys(known))

    def squash(text: str) -> str:
        return text.lower().replace("_", "").replace("-", "").replace(".", "")

    for candidate in known:
        if squash(candidate) == squash(name):
            return candidate
    lowered = {k.lower(): k for k in known}
    found = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.75)
    if found:
        return lowered[found[0]]
    tail = name.rpartition("/")[2].lower()
    tails = {k.rpartition("/")[2].lower(): k for k in known}
    found = difflib.get_close_matches(tail, list(tails), n=1, cutoff=0.8)
    return tails[found[0]] if found else None


class Resolver:
    """Definitions by model name, looked up in order and remembered for the process.

    ``cache_key`` names the user-cache folder of the service (None: no cache at all, as for
    the in-process sandbox); ``fetcher`` reaches the service (None: nothing is fetched).
    ``on_note`` receives the one-line notes (a fetch, a warning about a record).
    """

    def __init__(
        self,
        *,
        fetcher: Fetcher | None = None,
        cache_key: str | None = None,
        offline: bool = False,
        cache_dir: Path | None = None,
        on_note: Note | None = None,
        no_fetch_reason: str = "",
    ) -> None:
        self.fetcher = fetcher
        self.offline = offline
        key = cache_key if cache_key is not None else (fetcher.cache_key if fetcher else None)
        self.cache_folder = None if key is None else (cache_dir or cache_root()) / "models" / key
        self.on_note = on_note or (lambda text: log.info("%s", text))
        self.no_fetch_reason = no_fetch_reason
        self._memo: dict[tuple[Path | None, str], ModelDefinition] = {}
        self.fetched: list[str] = []

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        api_base: str | None = None,
        offline: bool = False,
        on_note: Note | None = None,
    ) -> Resolver:
        """For the service named by ``api_base`` or ``WIRO_API_BASE``, with the ``WIRO_*``
        credentials (checked only when a fetch is needed)."""
        env = dict(os.environ if environ is None else environ)
        base = api_base or env.get("WIRO_API_BASE") or DEFAULT_API_BASE
        env["WIRO_API_BASE"] = base
        key = service_key(base)

        def client() -> Any:
            from ..wiro.client import WiroClient  # aiohttp loads only when a fetch is needed

            return WiroClient.from_env(env)

        fetcher = ClientFetcher(client, where=public_base(base), cache_key=key)
        return cls(
            fetcher=fetcher,
            cache_key=key,
            offline=offline,
            cache_dir=cache_root(env),
            on_note=on_note,
        )

    # -- lookup --------------------------------------------------------------------------

    def places(self, project: Path | None) -> list[tuple[str, Path]]:
        """(description, folder) in lookup order."""
        found: list[tuple[str, Path]] = []
        if project is not None:
            found.append(("the project", project / PROJECT_DIR))
        if self.cache_folder is not None:
            found.append(("the user cache", self.cache_folder))
        found.append(("the package", shipped_dir()))
        return found

    def local_names(self, project: Path | None) -> list[str]:
        return [m for _what, folder in self.places(project) for m in known_models(folder)]

    def local(self, model: str, project: Path | None) -> ModelDefinition | None:
        """The first definition on disk; a broken project or package file is an error (it
        was put there on purpose), a broken cache file is fetched again."""
        for what, folder in self.places(project):
            path = find_file(folder, model)
            if path is None:
                continue
            try:
                return read_definition(path, shipped=what == "the package")
            except DefinitionProblem as exc:
                if what != "the user cache":
                    raise ModelError(f"the definition of {model!r} is unusable: {exc}") from None
                self.on_note(f"warning: ignoring the cached definition of {model}: {exc}")
        return None

    def resolve(self, model: str, project: Path | None = None) -> ModelDefinition:
        """The definition of ``model`` for a manifest in folder ``project``; raises
        :class:`~batch_runner.errors.ModelError` with a message that says what to do."""
        key = (project, model)
        if key in self._memo:
            return self._memo[key]
        problem = model_problem(model)
        if problem is not None:
            raise ModelError(f"model {model!r}: {problem}")
        definition = self.local(model, project)
        if definition is None:
            definition = self.fetch(model, project)
        self._memo[key] = definition
        return definition

    def resolve_all(
        self, models: Iterable[str], project: Path | None = None
    ) -> tuple[dict[str, ModelDefinition], dict[str, str]]:
        """Definitions of each model, and a message for each that has none."""
        found: dict[str, ModelDefinition] = {}
        problems: dict[str, str] = {}
        for model in dict.fromkeys(models):
            try:
                found[model] = self.resolve(model, project)
            except ModelError as exc:
                problems[model] = exc.message
        return found, problems

    # -- the service ---------------------------------------------------------------------

    def _looked(self, project: Path | None) -> str:
        return ", ".join(str(folder) for _what, folder in self.places(project))

    def _hint(self, model: str, project: Path | None, extra: Iterable[str] = ()) -> str:
        hint = closest(model, [*self.local_names(project), *extra])
        return f"; did you mean {hint!r}?" if hint and hint != model else ""

    def fetch(self, model: str, project: Path | None) -> ModelDefinition:
        """Fetch ``model`` from the service and cache it (raises ModelError)."""
        pull = f"batch-runner models pull {model}"
        same = [m for m in self.local_names(project) if m.lower() == model.lower()]
        if same:
            raise ModelError(
                f"unknown model {model!r}: model names are case-sensitive; did you mean "
                f"{same[0]!r}?"
            )
        looked = f"model {model!r} has no local definition (looked in {self._looked(project)})"
        if self.offline or self.fetcher is None:
            why = "--offline forbids fetching it" if self.offline else self.no_fetch_reason
            raise ModelError(
                f"{looked}{self._hint(model, project)}; {why or 'nothing can fetch it'}: run "
                f"`{pull}` to fetch it once"
            )
        fetcher = self.fetcher
        try:
            definition = fetcher.definition(model)
        except NotFoundError:
            names: list[str] = []
            for search in dict.fromkeys(model.split("/")):  # the owner's models, then by name
                try:
                    names += fetcher.names(search)
                except (ApiError, OSError):
                    break
            raise ModelError(
                f"unknown model {model!r}: {fetcher.where} has no such model"
                f"{self._hint(model, project, names)}"
            ) from None
        except DefinitionProblem as exc:
            raise ModelError(
                f"{fetcher.where} describes {model!r} in a way batch-runner cannot use: {exc}"
            ) from None
        except BatchRunnerError as exc:
            raise ModelError(
                f"{looked}{self._hint(model, project)}, and fetching it from {fetcher.where} "
                f"failed: {exc.message} Run `{pull}` once that is fixed."
            ) from None
        except (OSError, TimeoutError, RuntimeError) as exc:
            raise ModelError(
                f"{looked}, and fetching it from {fetcher.where} failed: "
                f"{type(exc).__name__}: {exc}"
            ) from None
        self.fetched.append(definition.model)
        if self.cache_folder is not None and fetcher.cache_key is not None:
            path = write_definition(self.cache_folder, _named(definition, model))
            self.on_note(
                f"fetched the definition of {model} from {fetcher.where}; cached in {path}"
            )
        else:
            self.on_note(f"fetched the definition of {model} from {fetcher.where} (not cached)")
        for warning in definition.warnings:
            self.on_note(f"warning: {model}: {warning}")
        return definition


def _named(definition: ModelDefinition, model: str) -> ModelDefinition:
    """The definition as the file for ``model`` (the name asked, which may differ in case
    from the service's): lookups by that name then find it."""
    if definition.model == model:
        return definition
    from dataclasses import replace

    return replace(definition, model=model)
