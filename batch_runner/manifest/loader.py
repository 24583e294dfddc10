"""Load a manifest: YAML (plus CSV / JSON Lines job files and a matrix) in, resolved jobs out.

Every problem is collected, not just the first: :func:`load_manifest` raises one
:class:`~batch_runner.errors.ManifestError` whose ``issues`` name the file, line, job and
field of each (capped at :data:`MAX_ISSUES`, with a count of the rest). Structure comes from
``schemas/manifest.schema.json``; each model's inputs from its definition, which a
:class:`~batch_runner.models.resolver.Resolver` finds (beside the manifest, in the user
cache, in the package, else from the service). This module adds what a schema cannot say:
unique ids, local files, data files, the matrix, which model each job runs on.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from .._files import gc_paused
from .._resources import schemas_dir
from ..errors import ManifestError
from ..models.definition import ModelDefinition, model_problem
from ..models.resolver import Resolver
from .builder import JobBuilder
from .context import JOB_KEYS, MAX_ISSUES, MODEL_KEYS, Axis, Files, Issues, JobContext, Layer
from .job import DEFAULT_MODEL, Job, normalise_value
from .schemacheck import (
    Checker,
    extra_keys,
    kind,
    load_schema,
    problem,
    show,
    suggest,
    unknown_key_message,
)
from .sources import CsvHeader, RawJob, decode_utf8, read_csv, read_jsonl
from .spec import ModelSpec, is_url, spec_for
from .yamlsafe import YMap, YSeq, load_yaml

__all__ = [
    "DEFAULT_MODEL",
    "MAX_ISSUES",
    "MAX_JOBS",
    "Manifest",
    "load_manifest",
    "supported_models",
]

#: Most jobs one manifest may expand to (inline + data files, times the matrix).
MAX_JOBS = 1_000_000


@dataclass(frozen=True)
class Manifest:
    """A valid manifest: its absolute path, model, expanded jobs and run settings
    (``output_dir``, ``concurrency``, ``publish``: the caller's values win, see
    :meth:`~batch_runner.engine.options.RunOptions.resolved`).

    ``model`` is the manifest's own model (its ``model:``, else the default); each job says
    its own (``Job.model``), ``models`` lists every model the jobs use, in order of first
    use, and ``definitions`` holds their definitions.
    """

    path: Path
    model: str
    jobs: tuple[Job, ...]
    output_dir: Path | None
    concurrency: int | None
    defaults: dict[str, str] = field(hash=False)
    models: tuple[str, ...] = ()
    definitions: dict[str, ModelDefinition] = field(default_factory=dict, hash=False)
    #: the object-store URL every verified output is uploaded to (``publish:``)
    publish: str | None = None
    #: the data files (``jobs_from``) the jobs were read from, absolute
    data_files: tuple[Path, ...] = ()

    def definition(self, model: str) -> ModelDefinition | None:
        return self.definitions.get(model)


# -- models -------------------------------------------------------------------------------------


def supported_models() -> list[str]:
    """Every model with a definition shipped in the package."""
    from ..models.store import known_models, shipped_dir

    return list(known_models(shipped_dir()))


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


def model_label(model: str, models: list[str]) -> str:
    """How a model shows in matrix ids: its name (``kling-v3``), or owner-name when two
    models of the axis share a name."""
    from .job import id_part

    owner, _, name = model.partition("/")
    clash = sum(1 for m in models if m.partition("/")[2].lower() == name.lower()) > 1
    return id_part(f"{owner}-{name}" if clash else name)


@dataclass(slots=True)
class _Mention:
    """Where a model is first named: file and line."""

    file: str
    line: int


class _Loader:
    """One load of one manifest; collects issues and raises at the end."""

    def __init__(self, path: Path, resolver: Resolver) -> None:
        self.resolver = resolver
        self.display = str(path)
        self.path = Path(os.path.abspath(path))
        self.issues = Issues()
        self.files = Files(self.path.parent)
        self.data_files: list[Path] = []
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
        del data  # 22 MB for 100,000 jobs: not kept beside the text while it is read
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

    # -- models --------------------------------------------------------------------------

    def default_model(self, root: YMap) -> str:
        top = root.get("model")
        defaults = root.get("defaults")
        own = defaults.get("model") if isinstance(defaults, YMap) else None
        if own is not None and isinstance(defaults, YMap):
            line = defaults.key_lines["model"]
            if "model" in root:
                self.issue(line, "defaults: set 'model' once, at the top level or in 'defaults'")
            elif not isinstance(own, str) or model_problem(own) is not None:
                self.issue(line, f"defaults field 'model': {model_problem(own)}, got {kind(own)}")
            else:
                return own
        return top if isinstance(top, str) else DEFAULT_MODEL

    def model_axis(self, root: YMap) -> tuple[int, list[tuple[str, int]]] | None:
        matrix = root.get("matrix")
        if not isinstance(matrix, YMap) or "model" not in matrix:
            return None
        values = matrix["model"]
        line = matrix.key_lines["model"]
        found: list[tuple[str, int]] = []
        first: dict[str, int] = {}
        if not isinstance(values, YSeq):
            return None  # the structure check reported it
        for index, value in enumerate(values):
            item_line = values.item_lines[index]
            reason = model_problem(value)
            if reason is not None:
                self.issue(
                    item_line, f"matrix 'model' value #{index + 1}: {reason}, got {kind(value)}"
                )
            elif value in first:
                self.issue(item_line, f"matrix 'model' lists {show(value)} twice "
                           f"(first at line {first[value]})")  # fmt: skip
            else:
                first[value] = item_line
                found.append((value, item_line))
        return line, found

    def models_in_play(
        self, root: YMap, raws: list[RawJob], default: str, axis: list[tuple[str, int]] | None
    ) -> dict[str, _Mention]:
        """Every model some job runs on, in order of first use, with where it is named."""
        used: dict[str, _Mention] = {}
        if axis is not None:
            for model, line in axis:
                used.setdefault(model, _Mention(self.display, line))
            return used
        top_line = root.key_lines.get("model", 1)
        defaults = root.get("defaults")
        if isinstance(defaults, YMap) and "model" in defaults:
            top_line = defaults.key_lines["model"]
        for raw in raws:
            own = raw.data.get("model") if isinstance(raw.data, dict) else None
            if own is None:
                if default not in used:  # (100,000 jobs: no mention built for each)
                    used[default] = _Mention(self.display, top_line)
            elif isinstance(own, str) and own not in used and model_problem(own) is None:
                used[own] = _Mention(raw.file, raw.line_of("model"))
        if not used:
            used[default] = _Mention(self.display, top_line)
        return used

    def load_models(self, used: dict[str, _Mention]) -> dict[str, ModelSpec]:
        definitions, problems = self.resolver.resolve_all(used, self.path.parent)
        for model, message in problems.items():
            mention = used[model]
            self.issue(mention.line, message, mention.file)
        if problems:
            self.fail()
        specs: dict[str, ModelSpec] = {}
        for model, definition in definitions.items():
            try:
                specs[model] = spec_for(definition)
            except Exception as exc:  # a hand-edited schema jsonschema cannot compile
                mention = used[model]
                self.issue(mention.line, f"model {model}: its schema cannot be used: {exc}",
                           mention.file)  # fmt: skip
        if len(specs) < len(used):
            self.fail()
        return specs

    # -- defaults, per-model blocks, matrix -------------------------------------------------

    def check_values(
        self,
        specs: list[ModelSpec],
        values: YMap,
        where: str,
        lines: dict[str, int],
        fallback: int,
    ) -> None:
        """Each value against every model that takes it (each problem said once)."""
        said: set[tuple[int, str]] = set()
        for spec in specs:
            taken = {k: v for k, v in values.items() if k in spec.properties}
            for name, message in spec.input_problems(taken):
                line = lines.get(name or "", fallback)
                text = f"{where} field '{name}': {message}" if name else f"{where}: {message}"
                if (line, text) not in said:
                    said.add((line, text))
                    self.issue(line, text)
            image_key = spec.image_input
            if "image" in values and image_key is not None:
                same = [k for k in spec.file_keys(image_key) or (image_key,) if k in values]
                if same:
                    text = f"{where}: set either 'image' or '{same[0]}', not both"
                    if (lines["image"], text) not in said:
                        said.add((lines["image"], text))
                        self.issue(lines["image"], text)
            for name in spec.files:
                others = [k for k in spec.file_keys(spec.files[name].name) if k in values]
                if len(others) > 1 and name == others[0]:
                    text = f"{where}: set either '{others[0]}' or '{others[1]}', not both"
                    self.issue(lines[others[1]], text)

    def load_defaults(self, root: YMap, ctx: JobContext) -> None:
        defaults = root.get("defaults")
        if not isinstance(defaults, YMap):
            return
        specs = list(ctx.specs.values())
        known = [*self.union(specs), "image"]
        for key in defaults:
            line = defaults.key_lines[key]
            if key == "id":
                self.issue(line, "defaults cannot set 'id': each job needs its own")
            elif key == "models":
                self.issue(line, "defaults cannot hold 'models': write the per-model blocks at "
                           "the top level")  # fmt: skip
            elif key == "model":
                continue
            elif key not in known:
                self.issue(
                    line, f"defaults: {unknown_key_message(key, known, 'input', ('model',))}"
                )
            elif key == "image":
                self.check_image_value(defaults["image"], line, "defaults")
                for model, spec in ctx.specs.items():
                    if spec.image_input is None:
                        self.issue(line, f"defaults: model {model} takes no image input; set "
                                   "'image' per model under 'models:'")  # fmt: skip
            else:
                for model, spec in ctx.specs.items():
                    if key not in spec.properties:
                        text = (
                            f"defaults: {model} takes no input {show(key)}; inputs for one "
                            "model only go in a per-model block ('models:')"
                        )
                        self.issue(line, text)
        values = YMap(defaults.line)
        for key, value in defaults.items():
            if key not in (*JOB_KEYS[:1], *MODEL_KEYS):
                values[key] = value
                values.key_lines[key] = defaults.key_lines[key]
        self.check_values(specs, values, "defaults", defaults.key_lines, defaults.line)
        ctx.defaults = Layer(
            values, lambda k: defaults.key_lines.get(k, defaults.line), self.display, None
        )

    def check_image_value(self, image: Any, line: int, where: str) -> None:
        if not isinstance(image, str) or not image:
            self.issue(line, f"{where} field 'image': expected a file name, got {kind(image)}")

    def load_blocks(self, root: YMap, ctx: JobContext) -> None:
        blocks = root.get("models")
        if not isinstance(blocks, YMap):
            return
        for model, block in blocks.items():
            line = blocks.key_lines[model]
            spec = ctx.specs.get(model)
            if spec is None:
                hint = suggest(model, list(ctx.specs))
                close = f"; did you mean {show(hint)}?" if hint else ""
                self.issue(line, f"models: {show(model)} is not the model of any job"
                           f" (the jobs use {', '.join(ctx.specs)}){close}")  # fmt: skip
                continue
            if not isinstance(block, YMap):
                continue  # the structure check reported it
            where = f"models.{model}"
            known = [*spec.properties, "image"]
            values = YMap(block.line)
            for key, value in block.items():
                if key not in known:
                    message = unknown_key_message(key, known, "input")
                    self.issue(block.key_lines[key], f"{where}: {message}")
                    continue
                if key == "image":
                    self.check_image_value(value, block.key_lines[key], where)
                    if spec.image_input is None:
                        self.issue(block.key_lines[key], f"{where}: model {model} takes no "
                                   "image input")  # fmt: skip
                values[key] = value
                values.key_lines[key] = block.key_lines[key]
            self.check_values([spec], values, where, block.key_lines, block.line)
            ctx.blocks[model] = Layer(values, _line_finder(block), self.display, None)

    @staticmethod
    def union(specs: list[ModelSpec]) -> list[str]:
        names: dict[str, None] = {}
        for spec in specs:
            names.update(dict.fromkeys(spec.properties))
        return list(names)

    def load_matrix(
        self, root: YMap, ctx: JobContext, axis: tuple[int, list[tuple[str, int]]] | None
    ) -> None:
        matrix = root.get("matrix")
        if not isinstance(matrix, YMap):
            return
        specs = list(ctx.specs.values())
        known = self.union(specs)
        if axis is not None:
            line, models = axis
            names = [m for m, _l in models]
            values = [(m, model_label(m, names)) for m in names]
            ctx.model_axis = Axis("model", line, values)
        for name, values in matrix.items():
            line = matrix.key_lines[name]
            if name == "model":
                continue
            if name not in known:
                if name in ("id", "image", "models"):
                    message = f"matrix over '{name}' is not supported; list those as jobs"
                else:
                    message = "matrix: " + unknown_key_message(name, known, "input", ("model",))
                self.issue(line, message)
                continue
            missing = [spec.name for spec in specs if name not in spec.properties]
            for model in missing:
                self.issue(line, f"matrix: {model} takes no input {show(name)}; a matrix input "
                           "must be an input of every model its jobs run on")  # fmt: skip
            if isinstance(values, YSeq) and not missing:
                ctx.axes.append(Axis(name, line, self.matrix_values(specs, name, values)))

    def matrix_values(
        self, specs: list[ModelSpec], name: str, values: YSeq
    ) -> list[tuple[Any, str]]:
        axis: list[tuple[Any, str]] = []
        first_line: dict[str, int] = {}
        for index, value in enumerate(values):
            line = values.item_lines[index]
            if isinstance(value, dict | list):
                continue  # the structure check reported it
            said: set[str] = set()
            for spec in specs:
                fs = spec.files.get(name)
                if fs is not None and not (isinstance(value, str) and is_url(value)):
                    said.add(f"matrix '{name}' value #{index + 1}: a matrix over a file input "
                             "takes URLs only; list local files as jobs")  # fmt: skip
                for _field, message in spec.input_problems({name: value}):
                    said.add(f"matrix '{name}' value #{index + 1}: {message}")
            for text in sorted(said):
                self.issue(line, text)
            norm = specs[0].normalise(name, value) if specs else normalise_value(value)
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

    def raw_jobs(self, root: YMap) -> tuple[list[RawJob], list[_Pending]]:
        """The jobs as written, and the data files' problems (added later, in file order)."""
        raws: list[RawJob] = []
        pending: list[_Pending] = []
        jobs = root.get("jobs")
        rel = self.path.name
        if isinstance(jobs, YSeq):
            for index, item in enumerate(jobs):
                lines = item.key_lines if isinstance(item, YMap) else None
                raws.append(RawJob(item, jobs.item_lines[index], lines, self.display, rel))
            jobs.clear()  # the raws hold them now, and let each go once it is checked
        sources = root.get("jobs_from")
        if isinstance(sources, str):
            sources = YSeq(root.key_lines["jobs_from"])
            sources.append(root["jobs_from"])
            sources.item_lines.append(root.key_lines["jobs_from"])
        if isinstance(sources, YSeq):
            for index, name in enumerate(sources):
                if isinstance(name, str) and name.lower().endswith((".csv", ".jsonl", ".ndjson")):
                    line = sources.item_lines[index]
                    found, problems = self.read_source(name, line, len(raws))
                    pending.append(problems)
                    raws.extend(found)
        return raws, pending

    def read_source(self, name: str, line: int, already: int) -> tuple[list[RawJob], _Pending]:
        path = self.files.resolve(name)
        display = str(Path(self.display).parent / os.path.expanduser(name))
        rel = Path(name).as_posix()
        pending = _Pending(display)
        try:
            data = path.read_bytes()
            self.data_files.append(path)
        except OSError as exc:
            reason = "file not found" if isinstance(exc, FileNotFoundError) else exc.strerror
            pending.manifest.append(
                (line, f"field 'jobs_from': cannot read {show(name)}: {reason} ({path})")
            )
            return [], pending
        text, bad = decode_utf8(data)
        del data  # 22 MB for 100,000 jobs: not kept beside the text while it is read
        if bad is not None or text is None:
            pending.problems.append((bad[0] if bad else 1, bad[1] if bad else "not UTF-8"))
            return [], pending
        limit = max(0, MAX_JOBS - already)
        if path.suffix.lower() == ".csv":
            raws, problems = read_csv(text, display, rel, None, limit, pending.headers)
        else:
            raws, problems = read_jsonl(text, display, rel, limit)
        pending.problems.extend(problems)
        pending.raws = raws
        return raws, pending

    def flush_sources(self, pending: list[_Pending], specs: list[ModelSpec]) -> None:
        """The data files' problems, and their CSV headers checked against the models."""
        known = [*self.union(specs), *JOB_KEYS]
        for source in pending:
            for line, message in source.manifest:
                self.issue(line, message)
            unknown: set[str] = set()
            header_problems = []
            for header in source.headers:
                for name in header.names:
                    if name not in known and name != "model":
                        unknown.add(name)
                        message = unknown_key_message(name, known, "column", ("model",))
                        header_problems.append((header.line, message))
            for line, message in sorted([*source.problems, *header_problems], key=lambda p: p[0]):
                self.issue(line, message, source.display)
            if unknown:
                for raw in source.raws:
                    for name in unknown:
                        raw.data.pop(name, None)

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
        default = self.default_model(root)
        axis = self.model_axis(root)
        raws, pending = self.raw_jobs(root)
        used = self.models_in_play(root, raws, default, axis[1] if axis else None)
        specs = self.load_models(used)
        job_schema = {"$defs": self.root_schema["$defs"], "$ref": "#/$defs/job"}
        checker = Checker(job_schema, self.root_schema)
        ctx = JobContext(specs, default, self.issues, self.files, checker)
        self.load_defaults(root, ctx)
        self.load_blocks(root, ctx)
        self.load_matrix(root, ctx, axis)
        self.flush_sources(pending, list(specs.values()))
        axes = [*ctx.axes, *([ctx.model_axis] if ctx.model_axis else [])]
        self.check_size(len(raws), root, axes)
        builder = JobBuilder(ctx)
        raws.reverse()
        while raws:  # each job's YAML is let go once checked: the tree never meets the jobs
            builder.check(raws.pop())
        self.fail_if_issues()
        jobs = builder.expand()
        self.fail_if_issues()
        output_dir = root.get("output_dir")
        concurrency = root.get("concurrency")
        publish = root.get("publish")
        names = [spec.name for spec in specs.values()]
        defaults = ctx.defaults.values if ctx.defaults is not None else {}
        taken = set(self.union(list(specs.values())))
        return Manifest(
            path=self.path,
            model=specs[default].name if default in specs else names[0],
            jobs=tuple(jobs),
            output_dir=self.files.resolve(output_dir) if isinstance(output_dir, str) else None,
            concurrency=concurrency if isinstance(concurrency, int) else None,
            defaults={k: normalise_value(v) for k, v in defaults.items() if k in taken},
            models=tuple(dict.fromkeys(job.model for job in jobs)) or tuple(names),
            definitions={spec.name: spec.definition for spec in specs.values() if spec.definition},
            publish=publish if isinstance(publish, str) else None,
            data_files=tuple(self.data_files),
        )


def _line_finder(block: YMap) -> Callable[[str], int]:
    """The line of a key of ``block`` (the block's own line for others)."""
    return lambda key: block.key_lines.get(key, block.line)


@dataclass(slots=True)
class _Pending:
    """What reading one data file found, held back so issues keep the manifest's order."""

    display: str
    problems: list[tuple[int, str]] = field(default_factory=list)
    manifest: list[tuple[int, str]] = field(default_factory=list)
    headers: list[CsvHeader] = field(default_factory=list)
    raws: list[RawJob] = field(default_factory=list)


def load_manifest(path: Path | str, *, resolver: Resolver | None = None) -> Manifest:
    """Read, validate and expand a manifest; raises ManifestError listing every problem.

    Relative paths inside the manifest (images, data files, ``output_dir``) are resolved
    against the manifest's folder, never the current directory. Messages name ``path`` as
    given, so they are clickable where the user typed it. ``resolver`` finds the models'
    definitions; the default looks beside the manifest, in the user cache and in the
    package, then fetches from the service of ``WIRO_API_BASE`` with ``WIRO_*``
    credentials when they are set.
    """
    with gc_paused():
        return _Loader(Path(path), resolver or Resolver.from_env()).load()
