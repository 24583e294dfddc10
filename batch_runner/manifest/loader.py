"""Load a manifest: YAML (plus CSV / JSON Lines job files and a matrix) in, resolved jobs out.

Every problem is collected, not just the first: :func:`load_manifest` raises one
:class:`~batch_runner.errors.ManifestError` whose ``issues`` name the file, line, job and
field of each (capped at :data:`MAX_ISSUES`, with a count of the rest). Structure comes from
``schemas/manifest.schema.json``, inputs from ``schemas/models/<owner>/<name>.schema.json``;
this module adds what a schema cannot say: unique ids, local images, data files, the matrix.
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from .._files import gc_paused
from .._resources import schemas_dir
from ..errors import ManifestError
from .builder import MAX_ISSUES, Axis, Files, Issues, JobBuilder, JobContext, ModelSpec
from .job import Job, normalise_value
from .schemacheck import (
    Checker,
    extra_keys,
    kind,
    load_schema,
    numeric_string_bounds,
    problem,
    show,
    suggest,
    unknown_key_message,
)
from .sources import RawJob, decode_utf8, read_csv, read_jsonl
from .yamlsafe import YMap, YSeq, load_yaml

__all__ = [
    "MAX_ISSUES",
    "MAX_JOBS",
    "Manifest",
    "load_manifest",
    "model_schema_path",
    "supported_models",
]

#: The model of a manifest that names none (the model this project started from).
DEFAULT_MODEL = "PixVerse/image-to-video-v5"
#: Most jobs one manifest may expand to (inline + data files, times the matrix).
MAX_JOBS = 1_000_000

_SEPARABLE_KEYWORDS = frozenset(
    {"$schema", "$id", "$comment", "$defs", "title", "description", "type", "properties"}
    | {"additionalProperties", "required"}
)


@dataclass(frozen=True)
class Manifest:
    """A valid manifest: its absolute path, model, expanded jobs and run settings."""

    path: Path
    model: str
    jobs: tuple[Job, ...]
    output_dir: Path | None
    concurrency: int | None
    defaults: dict[str, str] = field(hash=False)


# -- models -------------------------------------------------------------------------------------


def supported_models() -> list[str]:
    """Every model with an input schema under ``schemas/models/``."""
    root = schemas_dir() / "models"
    suffix = ".schema.json"
    return sorted(f"{p.parent.name}/{p.name[: -len(suffix)]}" for p in root.glob(f"*/*{suffix}"))


def model_schema_path(model: str) -> Path:
    """``schemas/models/<owner>/<name>.schema.json``; adding a model is adding that file."""
    owner, _, name = model.partition("/")
    if not owner or not name or "/" in name or {owner, name} & {".", ".."}:
        raise ManifestError(f"model {model!r} must be written as owner/name")
    path = schemas_dir() / "models" / owner / f"{name}.schema.json"
    if not path.is_file():
        known = supported_models()
        hint = suggest(model, known)
        text = f"model {model!r} is not supported: there is no input schema {path}"
        text += f"; did you mean {hint!r}?" if hint else f" (supported: {', '.join(known)})"
        raise ManifestError(text)
    return path


def _model_spec(model: str) -> ModelSpec:
    schema = load_schema(model_schema_path(model))
    # Required inputs are checked in code: a local `image` stands in for the image input.
    relaxed = {k: v for k, v in schema.items() if k != "required"}
    image_input = schema.get("x-image-input")
    return ModelSpec(
        name=model,
        properties=list(schema.get("properties", {})),
        required=tuple(schema.get("required", ())),
        image_input=image_input if isinstance(image_input, str) else None,
        checker=Checker(relaxed),
        separable=all(k in _SEPARABLE_KEYWORDS or k.startswith("x-") for k in schema),
        bounds=numeric_string_bounds(schema),
    )


def _locate(root: Any, path: Any) -> int:
    """The line of the deepest part of ``path`` (a jsonschema error path) found in root."""
    node, line = root, getattr(root, "line", 1)
    for part in path:
        if isinstance(node, YMap) and part in node:
            line = node.key_lines.get(part, line)
            node = node[part]
        elif isinstance(node, YSeq) and isinstance(part, int) and 0 <= part < len(node):
            line = node.item_lines[part]
            node = node[part]
        else:
            break
    return line


def _dotted(path: Any) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


class _Loader:
    """One load of one manifest; collects issues and raises at the end."""

    def __init__(self, path: Path) -> None:
        self.display = str(path)
        self.path = Path(os.path.abspath(path))
        self.issues = Issues()
        self.files = Files(self.path.parent)
        self.root_schema = load_schema(schemas_dir() / "manifest.schema.json")

    def fail_if_issues(self) -> None:
        if self.issues.count:
            self.fail()

    def fail(self) -> NoReturn:
        n = self.issues.count
        raise ManifestError(
            f"{self.display}: invalid manifest ({n:,} problem{'s' if n != 1 else ''})",
            self.issues.formatted(),
        )

    def issue(self, line: int, message: str, file: str | None = None) -> None:
        self.issues.add(file or self.display, line, message)

    # -- the file itself -----------------------------------------------------------------

    def read_root(self) -> YMap:
        try:
            data = self.path.read_bytes()
        except IsADirectoryError:
            raise ManifestError(f"{self.display}: is a directory, not a manifest file") from None
        except FileNotFoundError:
            raise ManifestError(f"{self.display}: file not found") from None
        except OSError as exc:
            raise ManifestError(f"{self.display}: cannot read: {exc.strerror or exc}") from None
        text, bad = decode_utf8(data)
        if bad is not None or text is None:
            line, message = bad or (1, "not UTF-8 text")
            self.issue(line, message)
            self.fail()
        result = load_yaml(text)
        for found in result.issues:
            self.issue(found.line, found.message)
        if result.fatal:
            self.fail()
        root = result.data
        if result.empty or root is None:
            self.issue(1, "the file is empty: a manifest needs at least a 'jobs:' list")
            self.fail()
        if not isinstance(root, YMap):
            line = getattr(root, "line", 1)
            self.issue(
                line, f"the top level must be a mapping (model:, jobs:, ...), got {kind(root)}"
            )
            self.fail()
        return root

    def check_structure(self, root: YMap) -> None:
        """The manifest schema, with each job's schema left for :meth:`check_job`."""
        schema = copy.deepcopy(self.root_schema)
        schema["properties"]["jobs"].pop("items", None)
        for error in Checker(schema).errors(root):
            path = list(error.absolute_path)
            if error.validator == "additionalProperties":
                known = list(self.root_schema["properties"])
                for key in extra_keys(error):
                    line = _locate(root, [*path, key])
                    where = f"in '{_dotted(path)}' " if path else ""
                    self.issue(line, where + unknown_key_message(key, known, "top-level key"))
                continue
            where = f"field '{_dotted(path)}': " if path else ""
            self.issue(_locate(root, path), where + problem(error))

    # -- model, defaults, matrix --------------------------------------------------------------

    def load_model(self, root: YMap) -> ModelSpec:
        model = root.get("model", DEFAULT_MODEL)
        if not isinstance(model, str):
            self.fail()  # the structure check reported it
        try:
            return _model_spec(model)
        except ManifestError as exc:
            self.issue(root.key_lines.get("model", 1), exc.message)
            self.fail()

    def load_defaults(self, root: YMap, ctx: JobContext) -> None:
        defaults = root.get("defaults")
        if not isinstance(defaults, YMap):
            return
        spec = ctx.spec
        known = [*spec.properties, "image"]
        for key in defaults:
            if key == "id":
                self.issue(
                    defaults.key_lines[key], "defaults cannot set 'id': each job needs its own"
                )
            elif key not in known:
                message = unknown_key_message(key, known, "input")
                self.issue(defaults.key_lines[key], f"defaults: {message}")
        ctx.defaults_raw = {k: v for k, v in defaults.items() if k in spec.properties}
        for name, message in spec.input_problems(ctx.defaults_raw):
            line = defaults.key_lines.get(name or "", defaults.line)
            self.issue(
                line, f"defaults field '{name}': {message}" if name else f"defaults: {message}"
            )
        image = defaults.get("image")
        if image is None:
            return
        ctx.defaults_has_image = True
        line = defaults.key_lines["image"]
        if not isinstance(image, str) or not image:
            self.issue(line, f"defaults field 'image': expected a file name, got {kind(image)}")
        elif spec.image_input in defaults:
            self.issue(line, f"defaults: set either 'image' or '{spec.image_input}', not both")
        else:
            path = self.files.resolve(image)
            info = self.files.image(path)
            if isinstance(info, str):
                self.issue(line, f"defaults field 'image': {info}")
            else:
                ctx.defaults_image = (path, info)

    def load_matrix(self, root: YMap, ctx: JobContext) -> None:
        matrix = root.get("matrix")
        if not isinstance(matrix, YMap):
            return
        spec = ctx.spec
        for name, values in matrix.items():
            line = matrix.key_lines[name]
            if name not in spec.properties:
                if name in ("id", "image"):
                    message = f"matrix over '{name}' is not supported; list those as jobs"
                else:
                    message = "matrix: " + unknown_key_message(name, spec.properties, "input")
                self.issue(line, message)
                continue
            if isinstance(values, YSeq):
                ctx.axes.append(Axis(name, line, self.matrix_values(spec, name, values)))

    def matrix_values(self, spec: ModelSpec, name: str, values: YSeq) -> list[tuple[Any, str]]:
        axis: list[tuple[Any, str]] = []
        first_line: dict[str, int] = {}
        for index, value in enumerate(values):
            line = values.item_lines[index]
            if isinstance(value, dict | list):
                continue  # the structure check reported it
            for _field, message in spec.input_problems({name: value}):
                self.issue(line, f"matrix '{name}' value #{index + 1}: {message}")
            norm = normalise_value(value)
            if norm in first_line:
                self.issue(
                    line,
                    f"matrix '{name}' lists {show(norm)} twice (first at line {first_line[norm]})",
                )
                continue
            first_line[norm] = line
            axis.append((value, norm))
        return axis

    # -- job sources -----------------------------------------------------------------------

    def raw_jobs(self, root: YMap, spec: ModelSpec) -> list[RawJob]:
        raws: list[RawJob] = []
        jobs = root.get("jobs")
        rel = self.path.name
        if isinstance(jobs, YSeq):
            for index, item in enumerate(jobs):
                lines = item.key_lines if isinstance(item, YMap) else None
                raws.append(RawJob(item, jobs.item_lines[index], lines, self.display, rel))
        sources = root.get("jobs_from")
        if isinstance(sources, str):
            sources = YSeq(root.key_lines["jobs_from"])
            sources.append(root["jobs_from"])
            sources.item_lines.append(root.key_lines["jobs_from"])
        if isinstance(sources, YSeq):
            for index, name in enumerate(sources):
                if isinstance(name, str) and name.lower().endswith((".csv", ".jsonl", ".ndjson")):
                    line = sources.item_lines[index]
                    raws.extend(self.read_source(spec, name, line, len(raws)))
        return raws

    def read_source(self, spec: ModelSpec, name: str, line: int, already: int) -> list[RawJob]:
        path = self.files.resolve(name)
        display = str(Path(self.display).parent / os.path.expanduser(name))
        rel = Path(name).as_posix()
        try:
            data = path.read_bytes()
        except OSError as exc:
            reason = "file not found" if isinstance(exc, FileNotFoundError) else exc.strerror
            self.issue(line, f"field 'jobs_from': cannot read {show(name)}: {reason} ({path})")
            return []
        text, bad = decode_utf8(data)
        if bad is not None or text is None:
            self.issue(bad[0] if bad else 1, bad[1] if bad else "not UTF-8", display)
            return []
        limit = max(0, MAX_JOBS - already)
        if path.suffix.lower() == ".csv":
            known = [*spec.properties, "id", "image"]
            raws, problems = read_csv(text, display, rel, known, limit)
        else:
            raws, problems = read_jsonl(text, display, rel, limit)
        for problem_line, message in problems:
            self.issue(problem_line, message, display)
        return raws

    def check_size(self, base_count: int, root: YMap, axes: list[Axis]) -> None:
        combos = math.prod(len(axis.values) for axis in axes) if axes else 1
        total = base_count * combos
        if total > MAX_JOBS:
            line = root.key_lines.get("matrix", 1)
            jobs = f"{base_count:,} job{'s' if base_count != 1 else ''}"
            text = f"{jobs} x {combos:,} matrix combinations = {total:,} jobs"
            self.issue(line, f"{text}; the limit is {MAX_JOBS:,} per manifest: split the batch")
            self.fail()
        if base_count == 0 and not self.issues.count:
            line = root.key_lines.get("jobs_from", root.key_lines.get("jobs", 1))
            self.issue(line, "the manifest has no jobs")

    # -- the whole manifest ----------------------------------------------------------------

    def load(self) -> Manifest:
        root = self.read_root()
        self.check_structure(root)
        spec = self.load_model(root)
        job_schema = {"$defs": self.root_schema["$defs"], "$ref": "#/$defs/job"}
        ctx = JobContext(spec, self.issues, self.files, Checker(job_schema, self.root_schema))
        self.load_defaults(root, ctx)
        self.load_matrix(root, ctx)
        raws = self.raw_jobs(root, spec)
        self.check_size(len(raws), root, ctx.axes)
        builder = JobBuilder(ctx)
        for raw in raws:
            builder.check(raw)
        self.fail_if_issues()
        jobs = builder.expand()
        self.fail_if_issues()
        output_dir = root.get("output_dir")
        concurrency = root.get("concurrency")
        return Manifest(
            path=self.path,
            model=spec.name,
            jobs=tuple(jobs),
            output_dir=self.files.resolve(output_dir) if isinstance(output_dir, str) else None,
            concurrency=concurrency if isinstance(concurrency, int) else None,
            defaults={k: normalise_value(v) for k, v in ctx.defaults_raw.items()},
        )


def load_manifest(path: Path) -> Manifest:
    """Read, validate and expand a manifest; raises ManifestError listing every problem.

    Relative paths inside the manifest (images, data files, ``output_dir``) are resolved
    against the manifest's folder, never the current directory. Messages name ``path`` as
    given, so they are clickable where the user typed it.
    """
    with gc_paused():
        return _Loader(Path(path)).load()
