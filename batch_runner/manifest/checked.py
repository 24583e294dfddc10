"""What the checks of :mod:`.builder` hand to :mod:`.expansion`: a base job that passed
(:class:`Base`), its version on one model (:class:`Partial`), and where a job the fast
path built at once was written (:class:`Where`, for messages about its id)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .job import FileInput
from .schemacheck import show
from .sources import RawJob
from .spec import ModelSpec


@dataclass(slots=True)
class Partial:
    """A base job checked on one model, before matrix expansion."""

    spec: ModelSpec
    label: str
    merged_raw: dict[str, Any]  # kept only when the model's rules span several fields
    inputs: dict[str, str]
    image: Path | None
    image_sha256: str | None
    files: tuple[FileInput, ...]
    tokens: dict[str, list[str]] | None  # None: no file input holds local files
    counts: dict[str, int] | None  # files per file input; None: none
    spec_key: str = ""  # the model as the manifest writes it


@dataclass(slots=True)
class Base:
    """A base job that passed its checks: its id and its version per model."""

    raw: RawJob
    label: str
    base_id: str
    #: the job on its one model, or by model for a job on several (a matrix over model)
    parts: Partial | dict[str, Partial]

    def part(self, model: str | None) -> Partial | None:
        if isinstance(self.parts, Partial):
            return self.parts if model is None or model == self.parts.spec_key else None
        return self.parts.get(model) if model else next(iter(self.parts.values()))


@dataclass(slots=True)
class Where:
    """Where a job the fast path kept was written (its id as written, for messages about
    it; held for every job until the manifest is built, so no tuple around it)."""

    id: str
    file: str
    line: int
    id_line: int
    ordinal: int

    def line_of(self, key: str) -> int:
        return self.id_line if key == "id" else self.line

    def label(self, job_id: str) -> str:
        return f"job {show(job_id)} (#{self.ordinal})"
