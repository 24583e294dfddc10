"""What every job of a manifest shares while it is checked: the issues found so far, the
matrix's axes, the manifest's folder and its file checks, the layers of values (defaults,
``models`` blocks), and the models' specs. Built by :mod:`.loader`, read by :mod:`.builder`
and :mod:`.expansion` for every job."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .schemacheck import Checker
from .sources import ImageInfo, MediaInfo, RawJob, inspect_image, inspect_media
from .spec import FileSpec, ModelSpec

#: Most issues listed in one ManifestError; the rest are counted.
MAX_ISSUES = 50
#: Keys of a job that are not model inputs.
JOB_KEYS = ("id", "image")
#: Keys of a job that choose models, accepted everywhere but not listed as inputs.
MODEL_KEYS = ("model", "models")


class Issues:
    """Issues in file order then line order, capped when formatted; counts the rest."""

    #: Issues kept for sorting; past this only the count grows (a million bad rows).
    KEEP = 100_000

    def __init__(self) -> None:
        self.items: list[tuple[int, int, int, str, str]] = []
        self.files: dict[str, int] = {}
        self.count = 0
        self.seen: set[tuple[str, int, str]] = set()

    def add(self, file: str, line: int, message: str) -> None:
        self.count += 1
        if len(self.items) < self.KEEP:
            rank = self.files.setdefault(file, len(self.files))
            self.items.append((rank, line, self.count, file, message))

    def once(self, file: str, line: int, message: str) -> None:
        """Add an issue unless the same one was added already (one per model, not per job)."""
        key = (file, line, message)
        if key not in self.seen:
            self.seen.add(key)
            self.add(file, line, message)

    def formatted(self) -> list[str]:
        shown = [f"{file}:{line}: {msg}" for _r, line, _n, file, msg in sorted(self.items)]
        shown = shown[:MAX_ISSUES]
        more = self.count - len(shown)
        return [*shown, f"... and {more:,} more"] if more > 0 else shown


@dataclass(slots=True)
class Axis:
    """One matrix input: its name, line, and values as written and as the API's strings
    (for ``model``: the model, and the short form its ids use)."""

    name: str
    line: int
    values: list[tuple[Any, str]]


class Files:
    """Paths relative to the manifest's folder, and local file checks, each done once."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.paths: dict[str, Path] = {}
        self.images: dict[Path, ImageInfo | str] = {}
        self.media: dict[tuple[Path, str | None], MediaInfo | str] = {}

    def resolve(self, name: str) -> Path:
        """Absolute, ``~`` expanded; cached because 100,000 rows share few names."""
        found = self.paths.get(name)
        if found is None:
            joined = self.folder / os.path.expanduser(name)
            found = self.paths[name] = Path(os.path.abspath(joined))
        return found

    def image(self, path: Path) -> ImageInfo | str:
        """The image's checks and hash (PixVerse's rules), or why it cannot be used."""
        found = self.images.get(path)
        if found is None:
            found = self.images[path] = inspect_image(path)
        return found

    def file(self, path: Path, accepts: str | None) -> MediaInfo | str:
        """A file input's file, checked (real media by content, size) and hashed."""
        key = (path, accepts)
        found = self.media.get(key)
        if found is None:
            found = self.media[key] = inspect_media(path, accepts)
        return found

    def check(self, spec: FileSpec, name: str) -> tuple[Path, str] | str:
        """(path, sha256) of a local file for ``spec``, or why it cannot be used."""
        path = self.resolve(name)
        info = self.image(path) if spec.kind == "url" else self.file(path, spec.accepts)
        return info if isinstance(info, str) else (path, info.sha256)


@dataclass(slots=True)
class Layer:
    """Values one part of the manifest gives a job (``defaults``, a ``models`` block, the
    job itself, the job's own block). ``where`` is the prefix of the messages about them, or
    None when they were checked (and reported) where they were written."""

    values: Mapping[str, Any]
    line_of: Callable[[str], int]
    file: str
    where: str | None
    prefix: str = ""


@dataclass(slots=True)
class JobContext:
    """What every job of a manifest shares: models, defaults, blocks, matrix, caches, issues."""

    specs: dict[str, ModelSpec]
    default_model: str
    issues: Issues
    files: Files
    job_checker: Checker
    defaults: Layer | None = None
    blocks: dict[str, Layer] = field(default_factory=dict)
    axes: list[Axis] = field(default_factory=list)
    model_axis: Axis | None = None
    manifest_file: str = ""

    @property
    def spec(self) -> ModelSpec:
        """The default model's spec (single-model manifests)."""
        return self.specs[self.default_model]

    def issue(self, raw: RawJob, line: int, message: str) -> None:
        """Report a problem of the job ``raw`` at ``line`` of its file."""
        self.issues.add(raw.file, line, message)


@dataclass(slots=True)
class SpecPlan:
    """What every job on one model shares, worked out once (the hot path runs per job)."""

    taken: frozenset[str]
    static: list[Layer]  # defaults and the model's block, filtered to its inputs
    files: list[tuple[str, FileSpec, tuple[str, ...]]]  # file input, its spec, its keys
    trigger: frozenset[str]  # every key that sets some file input
    required: list[tuple[str, tuple[str, ...]]]  # required input and the keys that set it
    others: frozenset[str]  # inputs of the manifest's other models that this one lacks
