"""The per-job half of manifest loading: check each job, then expand, name and fingerprint.

Split from :mod:`batch_runner.manifest` (which reads the file, the top level, ``defaults``,
``matrix`` and the data files) because this is the hot path: it runs once per job, 100,000
times for a large batch, so it avoids per-job work that can be done once (key sets, compiled
validators, path and image caches).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .job import (
    Job,
    content_hash,
    derive_job_id,
    fingerprint,
    id_problem,
    matrix_job_id,
    normalise_value,
)
from .schemacheck import Checker, kind, problem, show, suggest, unknown_key_message
from .sources import ImageInfo, RawJob, inspect_image

#: Most issues listed in one ManifestError; the rest are counted.
MAX_ISSUES = 50


class Issues:
    """Issues in file order then line order, capped when formatted; counts the rest."""

    #: Issues kept for sorting; past this only the count grows (a million bad rows).
    KEEP = 100_000

    def __init__(self) -> None:
        self.items: list[tuple[int, int, int, str, str]] = []
        self.files: dict[str, int] = {}
        self.count = 0

    def add(self, file: str, line: int, message: str) -> None:
        self.count += 1
        if len(self.items) < self.KEEP:
            rank = self.files.setdefault(file, len(self.files))
            self.items.append((rank, line, self.count, file, message))

    def formatted(self) -> list[str]:
        shown = [f"{file}:{line}: {msg}" for _r, line, _n, file, msg in sorted(self.items)]
        shown = shown[:MAX_ISSUES]
        more = self.count - len(shown)
        return [*shown, f"... and {more:,} more"] if more > 0 else shown


@dataclass(slots=True)
class ModelSpec:
    """A model's input schema, compiled once per load.

    ``separable`` means the schema only constrains fields one by one, so a job whose fields
    were each checked needs no further check per matrix combination.
    """

    name: str
    properties: list[str]
    required: tuple[str, ...]
    image_input: str | None
    checker: Checker
    separable: bool
    bounds: dict[str, tuple[float | None, float | None]]

    def input_problems(self, inputs: Mapping[str, Any]) -> list[tuple[str | None, str]]:
        """(field, message) for each field of ``inputs`` the schema refuses, one per field."""
        found: dict[str | None, str] = {}
        for error in self.checker.errors(inputs):
            path = list(error.absolute_path)
            name = str(path[0]) if path else None
            if error.validator in ("required", "additionalProperties") and name is None:
                continue  # reported by the callers, which know which keys are whose
            found.setdefault(name, problem(error))
        for name, (low, high) in self.bounds.items():
            value = inputs.get(name)
            if isinstance(value, str) and value.lstrip("-").isdigit() and name not in found:
                number = int(value)
                if (low is not None and number < low) or (high is not None and number > high):
                    found[name] = f"{show(value)} is out of range: expected {low} to {high}"
        return list(found.items())


@dataclass(slots=True)
class Axis:
    """One matrix input: its name, line, and values as written and as the API's strings."""

    name: str
    line: int
    values: list[tuple[Any, str]]


class Files:
    """Paths relative to the manifest's folder, and local image checks, each done once."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.paths: dict[str, Path] = {}
        self.images: dict[Path, ImageInfo | str] = {}

    def resolve(self, name: str) -> Path:
        """Absolute, ``~`` expanded; cached because 100,000 rows share few names."""
        found = self.paths.get(name)
        if found is None:
            joined = self.folder / os.path.expanduser(name)
            found = self.paths[name] = Path(os.path.abspath(joined))
        return found

    def image(self, path: Path) -> ImageInfo | str:
        """The image's checks and hash, or why it cannot be used."""
        found = self.images.get(path)
        if found is None:
            found = self.images[path] = inspect_image(path)
        return found


@dataclass(slots=True)
class JobContext:
    """What every job of a manifest shares: model, defaults, matrix, caches, issues."""

    spec: ModelSpec
    issues: Issues
    files: Files
    job_checker: Checker
    defaults_raw: dict[str, Any] = field(default_factory=dict)
    defaults_image: tuple[Path, ImageInfo] | None = None
    defaults_has_image: bool = False
    axes: list[Axis] = field(default_factory=list)


@dataclass(slots=True)
class _Partial:
    """A base job that passed its checks, before matrix expansion."""

    raw: RawJob
    label: str
    base_id: str
    merged_raw: dict[str, Any]  # kept only when the model's rules span several fields
    inputs: dict[str, str]
    image: Path | None
    image_sha256: str | None


class JobBuilder:
    """Checks jobs one by one (:meth:`check`), then expands them into :class:`Job`s."""

    def __init__(self, ctx: JobContext) -> None:
        self.ctx = ctx
        self.spec = ctx.spec
        self.properties = frozenset(ctx.spec.properties)
        self.known_ordered = [*ctx.spec.properties, "id", "image"]
        self.known = frozenset(self.known_ordered)
        self.axis_lines = {axis.name: axis.line for axis in ctx.axes}
        self.explicit_ids: dict[str, tuple[str, RawJob]] = {}
        self.occurrences: dict[str, int] = {}
        self.misspelt: set[str] = set()
        self.partials: list[_Partial] = []
        self.ordinal = 0

    def issue(self, raw: RawJob, line: int, message: str) -> None:
        self.ctx.issues.add(raw.file, line, message)

    # -- one job ---------------------------------------------------------------------------

    def check(self, raw: RawJob) -> None:
        """Validate one base job, recording issues; keep it for :meth:`expand` if valid."""
        self.ordinal += 1
        data = raw.data
        before = self.ctx.issues.count
        if not isinstance(data, dict):
            message = f"a job must be a mapping of input names to values, got {kind(data)}"
            self.issue(raw, raw.line, f"job #{self.ordinal}: {message}")
            return
        self.misspelt.clear()
        label = self.check_structure(raw)
        spec = self.spec
        own = {k: v for k, v in data.items() if k in self.properties}
        image = self.job_image(raw, label, own)
        merged = dict(self.ctx.defaults_raw)
        if image is not None and spec.image_input is not None:
            merged.pop(spec.image_input, None)
        merged.update(own)
        for name, message in spec.input_problems(merged):
            if name is None:
                self.issue(raw, raw.line, f"{label}: {message}")
            elif name in own:  # values from defaults were reported there
                self.issue(raw, raw.line_of(name), f"{label} field '{name}': {message}")
        has_image = image is not None or "image" in data or self.ctx.defaults_has_image
        self.check_required(raw, label, merged, has_image)
        if self.ctx.issues.count == before:
            self.partials.append(self.resolve(raw, label, own, merged, image))

    def resolve(
        self,
        raw: RawJob,
        label: str,
        own: dict[str, Any],
        merged: dict[str, Any],
        image: tuple[Path, ImageInfo] | None,
    ) -> _Partial:
        """A valid job's inputs as the API's strings, and its base id."""
        spec = self.spec
        inputs = {k: normalise_value(v) for k, v in merged.items()}
        if image is not None and spec.image_input is not None:
            inputs[spec.image_input] = ""  # filled with the uploaded file's URL at run time
        path, info = image if image is not None else (None, None)
        image_sha256 = info.sha256 if info is not None else None
        base_id = raw.data.get("id")
        if not isinstance(base_id, str):
            base_id = self.derived_id({k: inputs[k] for k in own}, image_sha256)
        return _Partial(
            raw=raw,
            label=label,
            base_id=base_id,
            merged_raw={} if spec.separable else merged,
            inputs=inputs,
            image=path,
            image_sha256=image_sha256,
        )

    def derived_id(self, own: dict[str, str], image_sha256: str | None) -> str:
        """The id of a job without one, from its own content; repeats get -2, -3, ..."""
        own_hash = content_hash(own, image_sha256)
        count = self.occurrences[own_hash] = self.occurrences.get(own_hash, 0) + 1
        return derive_job_id(own.get("prompt"), own_hash, count)

    def check_structure(self, raw: RawJob) -> str:
        """Check id, image and unknown keys; return the job's label for messages."""
        data = raw.data
        job_id = data.get("id")
        reason = id_problem(job_id) if isinstance(job_id, str) else None
        if isinstance(job_id, str) and reason is None:
            label = f"job {show(job_id)} (#{self.ordinal})"
        else:
            label = f"job #{self.ordinal}"
        id_reported = False
        for error in self.ctx.job_checker.errors(data):
            path = list(error.absolute_path)
            name = str(path[0]) if path else None
            message = problem(error)
            if name == "id" and isinstance(job_id, str):
                message = f"{show(job_id)} {reason or message}"
            id_reported = id_reported or name == "id"
            where = f"{label} field '{name}'" if name else label
            self.issue(raw, raw.line_of(name) if name else raw.line, f"{where}: {message}")
        if reason is not None and not id_reported:
            self.issue(raw, raw.line_of("id"), f"{label} field 'id': {show(job_id)} {reason}")
        if isinstance(job_id, str):
            self.check_duplicate_id(raw, label, job_id)
        if not self.known.issuperset(data) or self.axis_lines.keys() & data.keys():
            self.check_keys(raw, label)
        return label

    def check_keys(self, raw: RawJob, label: str) -> None:
        """Unknown keys (with a "did you mean"), and keys the matrix also sets."""
        for key in raw.data:
            if key not in self.known:
                message = unknown_key_message(key, self.known_ordered, "input")
                self.issue(raw, raw.line_of(key), f"{label}: {message}")
                self.misspelt.add(suggest(key, self.known_ordered) or "")
            elif key in self.axis_lines:
                self.issue(
                    raw,
                    raw.line_of(key),
                    f"{label} field '{key}' is also set by the matrix "
                    f"(line {self.axis_lines[key]}); remove one",
                )

    def check_duplicate_id(self, raw: RawJob, label: str, job_id: str) -> None:
        """Explicit ids must differ in more than letter case (they name files)."""
        first_id, first_raw = self.explicit_ids.setdefault(job_id.casefold(), (job_id, raw))
        if first_raw is raw:
            return
        where = f"{first_raw.file}:{first_raw.line_of('id')}"
        case = ""
        if first_id != job_id:
            case = f" ({show(first_id)} there differs only in letter case: same file name)"
        message = f"{label}: duplicate id {show(job_id)}, already used at {where}{case}"
        self.issue(raw, raw.line_of("id"), message)

    def job_image(
        self, raw: RawJob, label: str, own: dict[str, Any]
    ) -> tuple[Path, ImageInfo] | None:
        """The job's local image (its own, else the defaults'), checked; None for none."""
        spec = self.spec
        image = raw.data.get("image")
        url_key = spec.image_input
        if image is None:
            if url_key is not None and url_key in own:
                return None
            return self.ctx.defaults_image
        line = raw.line_of("image")
        problem_text = None
        if not isinstance(image, str) or not image:
            return None  # the job schema reported it
        if url_key is None:
            problem_text = f"model {spec.name} takes no image input"
        elif url_key in own:
            problem_text = f"set either 'image' or '{url_key}', not both"
        elif url_key in self.axis_lines:
            problem_text = f"'image' conflicts with the matrix over '{url_key}'"
        if problem_text is not None:
            self.issue(raw, line, f"{label}: {problem_text}")
            return None
        path = self.ctx.files.resolve(image)
        info = self.ctx.files.image(path)
        if isinstance(info, str):
            self.issue(raw, line, f"{label} field 'image': {info}")
            return None
        return path, info

    def check_required(
        self, raw: RawJob, label: str, merged: dict[str, Any], has_image: bool
    ) -> None:
        spec = self.spec
        for name in spec.required:
            if name in merged or name in self.axis_lines or name in self.misspelt:
                continue  # present, or already reported as a misspelling ("did you mean")
            hint = ""
            if name == spec.image_input:
                if has_image:
                    continue
                hint = " (or 'image' for a local file)"
            self.issue(
                raw,
                raw.line,
                f"{label}: missing required input '{name}'{hint}; set it in the job or in "
                "'defaults'",
            )

    # -- expansion, ids, fingerprints ----------------------------------------------------------

    def combinations(self) -> list[tuple[list[tuple[str, str]], dict[str, Any], dict[str, str]]]:
        """Every matrix combination as (name, value) pairs, raw values, string values."""
        names = [axis.name for axis in self.ctx.axes]
        result = []
        for combo in itertools.product(*(axis.values for axis in self.ctx.axes)):
            pairs = [(name, norm) for name, (_raw, norm) in zip(names, combo, strict=True)]
            raw_values = {name: raw for name, (raw, _norm) in zip(names, combo, strict=True)}
            result.append((pairs, raw_values, dict(pairs)))
        return result

    def expand(self) -> list[Job]:
        """Every valid base job times every matrix combination, with ids and fingerprints."""
        spec = self.spec
        combos = self.combinations()
        jobs: list[Job] = []
        owners: list[int] = []
        model = spec.name
        for number, part in enumerate(self.partials):
            source = f"{part.raw.rel}:{part.raw.line}"
            for pairs, raw_values, norm_values in combos:
                if pairs and not spec.separable:
                    self.check_combination(part, raw_values)
                inputs = {**part.inputs, **norm_values} if pairs else part.inputs
                job_id = matrix_job_id(part.base_id, pairs) if pairs else part.base_id
                jobs.append(
                    Job(
                        id=job_id,
                        index=len(jobs),
                        inputs=inputs,
                        image=part.image,
                        fingerprint=fingerprint(model, inputs, part.image_sha256),
                        source=source,
                    )
                )
                owners.append(number)
        self.check_unique_ids(jobs, owners)
        return jobs

    def check_combination(self, part: _Partial, raw_values: dict[str, Any]) -> None:
        """Cross-field rules of a non-separable model schema, per matrix combination."""
        for name, message in self.spec.input_problems({**part.merged_raw, **raw_values}):
            if name is None:
                text = f"{part.label} with {raw_values}: {message}"
                self.issue(part.raw, part.raw.line, text)

    def check_unique_ids(self, jobs: list[Job], owners: list[int]) -> None:
        """Generated ids must not meet another job's id, letter case aside."""
        seen: dict[str, int] = {}
        reported: set[tuple[int, int]] = set()
        for position, job in enumerate(jobs):
            first = seen.setdefault(job.id.casefold(), position)
            pair = (owners[first], owners[position])
            if first == position or pair in reported:
                continue
            reported.add(pair)
            part, other = self.partials[owners[position]], self.partials[owners[first]]
            case = ""
            if jobs[first].id != job.id:
                case = " (ids that differ only in letter case name the same file)"
            self.issue(
                part.raw,
                part.raw.line_of("id"),
                f"{part.label}: id {show(job.id)} is already used by the job at "
                f"{other.raw.file}:{other.raw.line_of('id')}{case}",
            )
