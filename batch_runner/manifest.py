"""Load a manifest: YAML (plus CSV / JSON Lines job files and a matrix) in, resolved jobs out.

Every problem is collected, not just the first: :func:`load_manifest` raises one
:class:`~batch_runner.errors.ManifestError` whose ``issues`` name the file, line, job and
field of each (capped at :data:`MAX_ISSUES`, with a count of the rest). Structure comes from
``schemas/manifest.schema.json``, inputs from ``schemas/models/<owner>/<name>.schema.json``;
this module adds what a schema cannot say: unique ids, local images, data files, the matrix.
"""

from __future__ import annotations

import copy
import gc
import itertools
import math
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from . import DEFAULT_MODEL
from .errors import ManifestError
from .jobs import (
    Job,
    content_hash,
    derive_job_id,
    fingerprint,
    id_problem,
    matrix_job_id,
    normalise_value,
)
from .jobsources import ImageInfo, RawJob, decode_utf8, inspect_image, read_csv, read_jsonl
from .resources import schemas_dir
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
from .yamlsafe import YMap, YSeq, load_yaml

#: Most jobs one manifest may expand to (inline + data files, times the matrix).
MAX_JOBS = 1_000_000
#: Most issues listed in one ManifestError; the rest are counted.
MAX_ISSUES = 50

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


@dataclass(slots=True)
class _ModelSpec:
    """A model's input schema, compiled once per load."""

    name: str
    properties: list[str]
    required: tuple[str, ...]
    image_input: str | None
    checker: Checker
    separable: bool
    bounds: dict[str, tuple[float | None, float | None]]


def _model_spec(model: str) -> _ModelSpec:
    schema = load_schema(model_schema_path(model))
    # Required inputs are checked in code: a local `image` stands in for the image input.
    relaxed = {k: v for k, v in schema.items() if k != "required"}
    image_input = schema.get("x-image-input")
    return _ModelSpec(
        name=model,
        properties=list(schema.get("properties", {})),
        required=tuple(schema.get("required", ())),
        image_input=image_input if isinstance(image_input, str) else None,
        checker=Checker(relaxed),
        separable=all(k in _SEPARABLE_KEYWORDS or k.startswith("x-") for k in schema),
        bounds=numeric_string_bounds(schema),
    )


# -- issue collection ----------------------------------------------------------------------


class _Issues:
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
class _Partial:
    """A base job that passed its checks, before matrix expansion."""

    raw: RawJob
    label: str
    explicit_id: str | None
    own: dict[str, str]
    merged_raw: dict[str, Any]
    inputs: dict[str, str]
    image: Path | None
    image_sha256: str | None


@dataclass(slots=True)
class _Axis:
    name: str
    line: int
    values: list[tuple[Any, str]]


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC: its passes over 100,000s of fresh acyclic objects cost seconds."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


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
        self.dir = self.path.parent
        self.issues = _Issues()
        self.spec: _ModelSpec | None = None
        self.defaults_raw: dict[str, Any] = {}
        self.defaults_image: Path | None = None
        self.defaults_image_info: ImageInfo | None = None
        self.defaults_has_image = False
        self.axes: list[_Axis] = []
        self.images: dict[Path, ImageInfo | str] = {}
        self.explicit_ids: dict[str, tuple[str, RawJob]] = {}
        self.properties: frozenset[str] = frozenset()
        self.known_keys: frozenset[str] = frozenset()
        self.known_keys_ordered: list[str] = []
        self.axis_lines: dict[str, int] = {}
        self.ordinal = 0
        root_schema = load_schema(schemas_dir() / "manifest.schema.json")
        self.job_checker = Checker(
            {"$defs": root_schema["$defs"], "$ref": "#/$defs/job"}, root_schema
        )
        self.root_schema = root_schema

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

    def load_model(self, root: YMap) -> _ModelSpec:
        model = root.get("model", DEFAULT_MODEL)
        if not isinstance(model, str):
            self.fail()  # the structure check reported it
        try:
            return _model_spec(model)
        except ManifestError as exc:
            self.issue(root.key_lines.get("model", 1), exc.message)
            self.fail()

    def input_problems(self, inputs: Mapping[str, Any]) -> list[tuple[str | None, str]]:
        """(field, message) for each field of ``inputs`` the model schema refuses; one each."""
        spec = self.spec
        assert spec is not None
        found: dict[str | None, str] = {}
        for error in spec.checker.errors(inputs):
            path = list(error.absolute_path)
            name = str(path[0]) if path else None
            if error.validator in ("required", "additionalProperties") and name is None:
                continue  # reported by the callers, which know which keys are whose
            found.setdefault(name, problem(error))
        for name, (low, high) in spec.bounds.items():
            value = inputs.get(name)
            if isinstance(value, str) and value.lstrip("-").isdigit() and name not in found:
                number = int(value)
                if (low is not None and number < low) or (high is not None and number > high):
                    found[name] = f"{show(value)} is out of range: expected {low} to {high}"
        return list(found.items())

    def load_defaults(self, root: YMap) -> None:
        defaults = root.get("defaults")
        if not isinstance(defaults, YMap):
            return
        spec = self.spec
        assert spec is not None
        known = [*spec.properties, "image"]
        for key in defaults:
            if key == "id":
                self.issue(
                    defaults.key_lines[key], "defaults cannot set 'id': each job needs its own"
                )
            elif key not in known:
                message = unknown_key_message(key, known, "input")
                self.issue(defaults.key_lines[key], f"defaults: {message}")
        self.defaults_raw = {k: v for k, v in defaults.items() if k in spec.properties}
        for name, message in self.input_problems(self.defaults_raw):
            line = defaults.key_lines.get(name or "", defaults.line)
            self.issue(
                line, f"defaults field '{name}': {message}" if name else f"defaults: {message}"
            )
        image = defaults.get("image")
        if image is None:
            return
        self.defaults_has_image = True
        line = defaults.key_lines["image"]
        if not isinstance(image, str) or not image:
            self.issue(line, f"defaults field 'image': expected a file name, got {kind(image)}")
        elif spec.image_input in defaults:
            self.issue(line, f"defaults: set either 'image' or '{spec.image_input}', not both")
        else:
            path = self.resolve_path(image)
            info = self.image_info(path)
            if isinstance(info, str):
                self.issue(line, f"defaults field 'image': {info}")
            else:
                self.defaults_image, self.defaults_image_info = path, info

    def load_matrix(self, root: YMap) -> None:
        matrix = root.get("matrix")
        if not isinstance(matrix, YMap):
            return
        spec = self.spec
        assert spec is not None
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
                self.axes.append(_Axis(name, line, self.matrix_values(name, values)))

    def matrix_values(self, name: str, values: YSeq) -> list[tuple[Any, str]]:
        axis: list[tuple[Any, str]] = []
        first_line: dict[str, int] = {}
        for index, value in enumerate(values):
            line = values.item_lines[index]
            if isinstance(value, dict | list):
                continue  # the structure check reported it
            for _field, message in self.input_problems({name: value}):
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

    def raw_jobs(self, root: YMap) -> list[RawJob]:
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
                    raws.extend(self.read_source(name, sources.item_lines[index], len(raws)))
        return raws

    def read_source(self, name: str, line: int, already: int) -> list[RawJob]:
        spec = self.spec
        assert spec is not None
        path = self.resolve_path(name)
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

    def resolve_path(self, name: str) -> Path:
        """A path from the manifest, relative to the manifest's folder (``~`` expanded)."""
        return Path(os.path.abspath(self.dir / os.path.expanduser(name)))

    def image_info(self, path: Path) -> ImageInfo | str:
        found = self.images.get(path)
        if found is None:
            found = self.images[path] = inspect_image(path)
        return found

    # -- one job ---------------------------------------------------------------------------

    def check_job(self, raw: RawJob) -> _Partial | None:
        """Validate one base job; None (with issues recorded) when it is invalid."""
        self.ordinal += 1
        data = raw.data
        before = self.issues.count
        if not isinstance(data, dict):
            self.issue(
                raw.line,
                f"job #{self.ordinal}: a job must be a mapping of input names to values, "
                f"got {kind(data)}",
                raw.file,
            )
            return None
        label = self.check_job_structure(raw)
        spec = self.spec
        assert spec is not None
        properties = self.properties
        own = {k: v for k, v in data.items() if k in properties}
        image = self.job_image(raw, label, own)
        merged = dict(self.defaults_raw)
        if image is not None and spec.image_input is not None:
            merged.pop(spec.image_input, None)
        merged.update(own)
        for name, message in self.input_problems(merged):
            if name is None or name in own:
                at = raw.line_of(name) if name else raw.line
                self.issue(
                    at,
                    f"{label} field '{name}': {message}" if name else f"{label}: {message}",
                    raw.file,
                )
        has_image = image is not None or "image" in data or self.defaults_has_image
        self.check_required(raw, label, merged, has_image)
        if self.issues.count != before:
            return None
        inputs = {k: normalise_value(v) for k, v in merged.items()}
        if image is not None and spec.image_input is not None:
            inputs[spec.image_input] = ""  # filled with the uploaded file's URL at run time
        explicit = data.get("id")
        path, info = image if image is not None else (None, None)
        return _Partial(
            raw=raw,
            label=label,
            explicit_id=explicit if isinstance(explicit, str) else None,
            own={k: inputs[k] for k in own},
            merged_raw=merged,
            inputs=inputs,
            image=path,
            image_sha256=info.sha256 if info is not None else None,
        )

    def check_job_structure(self, raw: RawJob) -> str:
        """Check id, image and unknown keys; return the job's label for messages."""
        data = raw.data
        spec = self.spec
        assert spec is not None
        job_id = data.get("id")
        reason = id_problem(job_id) if isinstance(job_id, str) else None
        if isinstance(job_id, str) and reason is None:
            label = f"job {show(job_id)} (#{self.ordinal})"
        else:
            label = f"job #{self.ordinal}"
        id_reported = False
        for error in self.job_checker.errors(data):
            path = list(error.absolute_path)
            name = str(path[0]) if path else None
            message = problem(error)
            if name == "id" and isinstance(job_id, str):
                message = f"{show(job_id)} {reason or message}"
            id_reported = id_reported or name == "id"
            where = f"{label} field '{name}'" if name else label
            self.issue(raw.line_of(name) if name else raw.line, f"{where}: {message}", raw.file)
        if reason is not None and not id_reported:
            message = f"{label} field 'id': {show(job_id)} {reason}"
            self.issue(raw.line_of("id"), message, raw.file)
        if isinstance(job_id, str):
            self.check_duplicate_id(raw, label, job_id)
        if not self.known_keys.issuperset(data) or self.axis_lines.keys() & data.keys():
            self.check_job_keys(raw, label)
        return label

    def check_job_keys(self, raw: RawJob, label: str) -> None:
        """Unknown keys (with a "did you mean"), and keys the matrix also sets."""
        known = list(self.known_keys_ordered)
        for key in raw.data:
            if key not in self.known_keys:
                message = unknown_key_message(key, known, "input")
                self.issue(raw.line_of(key), f"{label}: {message}", raw.file)
            elif key in self.axis_lines:
                self.issue(
                    raw.line_of(key),
                    f"{label} field '{key}' is also set by the matrix "
                    f"(line {self.axis_lines[key]}); remove one",
                    raw.file,
                )

    def check_duplicate_id(self, raw: RawJob, label: str, job_id: str) -> None:
        """Explicit ids must differ in more than letter case (they name files)."""
        first_id, first_raw = self.explicit_ids.setdefault(job_id.casefold(), (job_id, raw))
        if first_raw is raw:
            return
        line = raw.line_of("id")
        file, first_line = first_raw.file, first_raw.line_of("id")
        case = ""
        if first_id != job_id:
            case = f" ({show(first_id)} there differs only in letter case: same file name)"
        self.issue(
            line,
            f"{label}: duplicate id {show(job_id)}, already used at {file}:{first_line}{case}",
            raw.file,
        )

    def job_image(
        self, raw: RawJob, label: str, own: dict[str, Any]
    ) -> tuple[Path, ImageInfo] | None:
        """The job's local image (its own, else the defaults'), checked; None for none."""
        spec = self.spec
        assert spec is not None
        image = raw.data.get("image")
        url_key = spec.image_input
        if image is None:
            if url_key is not None and url_key in own:
                return None
            if self.defaults_image is not None and self.defaults_image_info is not None:
                return self.defaults_image, self.defaults_image_info
            return None
        line = raw.line_of("image")
        if not isinstance(image, str) or not image:
            return None  # the job schema reported it
        if url_key is None:
            self.issue(line, f"{label}: model {spec.name} takes no image input", raw.file)
            return None
        if url_key in own:
            self.issue(line, f"{label}: set either 'image' or '{url_key}', not both", raw.file)
            return None
        if any(axis.name == url_key for axis in self.axes):
            self.issue(
                line, f"{label}: 'image' conflicts with the matrix over '{url_key}'", raw.file
            )
            return None
        path = self.resolve_path(image)
        info = self.image_info(path)
        if isinstance(info, str):
            self.issue(line, f"{label} field 'image': {info}", raw.file)
            return None
        return path, info

    def check_required(
        self, raw: RawJob, label: str, merged: dict[str, Any], has_image: bool
    ) -> None:
        spec = self.spec
        assert spec is not None
        axes = {axis.name for axis in self.axes}
        for name in spec.required:
            if name in merged or name in axes:
                continue
            if name == spec.image_input:
                if has_image:
                    continue
                hint = " (or 'image' for a local file)"
            else:
                hint = ""
            self.issue(
                raw.line,
                f"{label}: missing required input '{name}'{hint}; set it in the job or in "
                "'defaults'",
                raw.file,
            )

    # -- expansion, ids, fingerprints ----------------------------------------------------------

    def combinations(self) -> list[tuple[list[tuple[str, str]], dict[str, Any], dict[str, str]]]:
        names = [axis.name for axis in self.axes]
        result = []
        for combo in itertools.product(*(axis.values for axis in self.axes)):
            pairs = [(name, norm) for name, (_raw, norm) in zip(names, combo, strict=True)]
            raw_values = {name: raw for name, (raw, _norm) in zip(names, combo, strict=True)}
            result.append((pairs, raw_values, dict(pairs)))
        return result

    def expand(self, partials: list[_Partial]) -> tuple[list[Job], list[int]]:
        """Every base job times every matrix combination, with ids and fingerprints.

        Also returns, for each job, the index of the partial it came from.
        """
        spec = self.spec
        assert spec is not None
        combos = self.combinations()
        occurrences: dict[str, int] = {}
        jobs: list[Job] = []
        owners: list[int] = []
        model = spec.name
        for number, part in enumerate(partials):
            base_id = part.explicit_id
            if base_id is None:
                own_hash = content_hash(part.own, part.image_sha256)
                occurrences[own_hash] = occurrences.get(own_hash, 0) + 1
                base_id = derive_job_id(part.own.get("prompt"), own_hash, occurrences[own_hash])
            source = f"{part.raw.rel}:{part.raw.line}"
            for pairs, raw_values, norm_values in combos:
                if pairs and not spec.separable:
                    self.check_combination(part, raw_values)
                inputs = {**part.inputs, **norm_values} if pairs else part.inputs
                job_id = matrix_job_id(base_id, pairs) if pairs else base_id
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
        return jobs, owners

    def check_combination(self, part: _Partial, raw_values: dict[str, Any]) -> None:
        """Cross-field rules of a non-separable model schema, per matrix combination."""
        for name, message in self.input_problems({**part.merged_raw, **raw_values}):
            if name is None:
                self.issue(
                    part.raw.line, f"{part.label} with {raw_values}: {message}", part.raw.file
                )

    def check_unique_ids(
        self, jobs: list[Job], owners: list[int], partials: list[_Partial]
    ) -> None:
        """Ids must differ in more than letter case: they name files on case-folding disks."""
        seen: dict[str, int] = {}
        reported: set[tuple[int, int]] = set()
        for position, job in enumerate(jobs):
            folded = job.id.casefold()
            first = seen.setdefault(folded, position)
            pair = (owners[first], owners[position])
            if first == position or pair in reported:
                continue
            reported.add(pair)
            part, other = partials[owners[position]], partials[owners[first]]
            case = ""
            if jobs[first].id != job.id:
                case = " (ids that differ only in letter case name the same file)"
            self.issue(
                part.raw.line_of("id"),
                f"{part.label}: id {show(job.id)} is already used by the job at "
                f"{other.raw.file}:{other.raw.line_of('id')}{case}",
                part.raw.file,
            )

    def check_size(self, base_count: int, root: YMap) -> None:
        combos = math.prod(len(axis.values) for axis in self.axes) if self.axes else 1
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
        self.spec = self.load_model(root)
        self.properties = frozenset(self.spec.properties)
        self.known_keys_ordered = [*self.spec.properties, "id", "image"]
        self.known_keys = frozenset(self.known_keys_ordered)
        self.load_defaults(root)
        self.load_matrix(root)
        self.axis_lines = {axis.name: axis.line for axis in self.axes}
        raws = self.raw_jobs(root)
        self.check_size(len(raws), root)
        partials = [p for p in map(self.check_job, raws) if p is not None]
        self.fail_if_issues()
        jobs, owners = self.expand(partials)
        self.check_unique_ids(jobs, owners, partials)
        self.fail_if_issues()
        output_dir = root.get("output_dir")
        concurrency = root.get("concurrency")
        return Manifest(
            path=self.path,
            model=self.spec.name,
            jobs=tuple(jobs),
            output_dir=self.resolve_path(output_dir) if isinstance(output_dir, str) else None,
            concurrency=concurrency if isinstance(concurrency, int) else None,
            defaults={k: normalise_value(v) for k, v in self.defaults_raw.items()},
        )


def load_manifest(path: Path) -> Manifest:
    """Read, validate and expand a manifest; raises ManifestError listing every problem.

    Relative paths inside the manifest (images, data files, ``output_dir``) are resolved
    against the manifest's folder, never the current directory. Messages name ``path`` as
    given, so they are clickable where the user typed it.
    """
    with _gc_paused():
        return _Loader(Path(path)).load()
