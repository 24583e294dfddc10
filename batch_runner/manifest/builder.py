"""The per-job half of manifest loading: check each job (:class:`JobBuilder`); the checked
jobs are then expanded, named and fingerprinted by :mod:`.expansion`.

Split from :mod:`batch_runner.manifest.loader` (which reads the file, the top level,
``defaults``, ``models``, ``matrix`` and the data files) because this is the hot path: it
runs once per job, 100,000 times for a large batch, so it avoids per-job work that can be
done once (key sets, compiled validators, path and file caches). A job of a shape seen
before whose values pass their checks at once takes :mod:`.fastpath` (with no
matrix, it is built into its :class:`~.job.Job` there and then); anything else takes the
full checks, which also word every message.

A job's inputs come from layers, each overriding the one before: ``defaults``, the
manifest's block for the job's model (``models: {M: {...}}``), the job's own keys, and the
job's own block for its model. A job on several models (a matrix over ``model``) is checked
once per model.
"""

from __future__ import annotations

from typing import Any

from .checked import Base, Partial, Where
from .context import JOB_KEYS, MODEL_KEYS, JobContext, Layer, SpecPlan
from .expansion import Expansion
from .fastpath import FastPath
from .filechecks import FileChecks
from .job import (
    FileInput,
    FileRef,
    Job,
    canonical_json,
    content_hash,
    derive_job_id,
    id_problem,
    normalise_value,
)
from .schemacheck import kind, problem, show, suggest, unknown_key_message
from .sources import RawJob
from .spec import FileSpec, ModelSpec, wire_urls


class JobBuilder:
    """Checks jobs one by one (:meth:`check`), then hands them to :class:`~.expansion.Expansion`
    (:meth:`expand`)."""

    def __init__(self, ctx: JobContext) -> None:
        self.ctx = ctx
        union: dict[str, None] = {}
        for spec in ctx.specs.values():
            union.update(dict.fromkeys(spec.properties))
        self.inputs_union = frozenset(union)
        self.known_ordered = [*union, *JOB_KEYS]
        self.known = frozenset([*self.known_ordered, *MODEL_KEYS])
        self.axis_lines = {axis.name: axis.line for axis in ctx.axes}
        if ctx.model_axis is not None:
            self.axis_lines["model"] = ctx.model_axis.line
        #: by case-folded id: where each explicit id was first written
        self.explicit_ids: dict[str, Where | tuple[str, RawJob]] = {}
        self.occurrences: dict[str, int] = {}
        self.misspelt: set[str] = set()
        self.plans: dict[str, SpecPlan] = {}
        #: the jobs that passed, each as a base job, or as its Job when the fast path built
        #: it at once (no matrix)
        self.bases: list[Base | Job] = []
        self.ordinal = 0
        #: every base job is one job (no matrix): the fast path builds it at once
        self.single = not ctx.axes and ctx.model_axis is None
        self.file_checks = FileChecks(ctx, self.axis_lines)
        self.fast = FastPath(self)

    # -- one job ---------------------------------------------------------------------------

    def models_of(self, raw: RawJob) -> list[str]:
        """The models a job runs on: the matrix's, its own, else the manifest's."""
        axis = self.ctx.model_axis
        if axis is not None:
            return [model for model, _label in axis.values]
        own = raw.data.get("model")
        if isinstance(own, str):
            return [own] if own in self.ctx.specs else []  # an unknown one was reported
        return [self.ctx.default_model] if self.ctx.default_model in self.ctx.specs else []

    def check(self, raw: RawJob) -> None:
        """Validate one base job, recording issues; keep it for :meth:`expand` if valid."""
        self.ordinal += 1
        data = raw.data
        before = self.ctx.issues.count
        if not isinstance(data, dict):
            message = f"a job must be a mapping of input names to values, got {kind(data)}"
            self.ctx.issue(raw, raw.line, f"job #{self.ordinal}: {message}")
            return
        if self.fast.check(raw, data):
            return
        self.misspelt.clear()
        label = self.check_structure(raw)
        models = self.models_of(raw)
        parts: dict[str, Partial] = {}
        for model in models:
            spec = self.ctx.specs[model]
            where = f"{label} on {model}" if len(models) > 1 else label
            part = self.check_on(raw, label, where, spec, model)
            if part is not None:
                parts[model] = part
        if self.ctx.issues.count == before and parts:
            base_id = self.base_id(raw, parts)
            only = next(iter(parts.values())) if len(parts) == 1 else None
            self.bases.append(Base(raw, label, base_id, only or parts))

    def plan_for(self, spec: ModelSpec, model: str) -> SpecPlan:
        """The per-model facts every job on ``model`` needs (computed on first use)."""
        found = self.plans.get(model)
        if found is not None:
            return found
        ctx = self.ctx
        taken = frozenset((*spec.properties, "image"))
        static: list[Layer] = []
        if ctx.defaults is not None:
            values = {k: v for k, v in ctx.defaults.values.items() if k in taken}
            static.append(Layer(values, ctx.defaults.line_of, ctx.defaults.file, None))
        block = ctx.blocks.get(model)
        if block is not None:
            prefix = f"models.{model}."
            static.append(Layer(block.values, block.line_of, block.file, None, prefix))
        image_spec = spec.image_spec
        specs = {fs.name: fs for fs in spec.files.values()}
        if image_spec is not None:
            specs.setdefault(image_spec.name, image_spec)
        files = []
        for name, fs in specs.items():
            keys = (name, "image") if fs.kind == "url" else spec.file_keys(name)
            if fs.kind != "url" and image_spec is not None and image_spec.name == name:
                keys = (*keys, "image")
            files.append((name, fs, keys))
        required = [(name, (name, *spec.file_keys(name))) for name in spec.required]
        found = self.plans[model] = SpecPlan(
            taken=taken,
            static=static,
            files=files,
            trigger=frozenset(k for _n, _f, keys in files for k in keys),
            required=required,
            others=self.inputs_union - frozenset(spec.properties),
        )
        return found

    def layers(self, raw: RawJob, where: str, spec: ModelSpec, model: str) -> list[Layer]:
        """The job's values on ``model`` (as the manifest writes it), lowest first."""
        data = raw.data
        plan = self.plan_for(spec, model)
        taken = plan.taken
        found = list(plan.static)
        own = {k: v for k, v in data.items() if k in taken}
        found.append(Layer(own, raw.line_of, raw.file, where))
        job_blocks = data.get("models")
        mine = job_blocks.get(model) if isinstance(job_blocks, dict) else None
        if isinstance(mine, dict):
            lines = getattr(mine, "key_lines", {})
            default = raw.line_of("models")
            prefix = f"models.{model}."
            found.append(Layer(mine, lambda k: lines.get(k, default), raw.file, where, prefix))
        return found

    def check_on(
        self, raw: RawJob, label: str, where: str, spec: ModelSpec, model: str
    ) -> Partial | None:
        """Check one job on one model; None when it has problems there (reported)."""
        layers = self.layers(raw, where, spec, model)
        plan = self.plans[model]
        if (plan.others and not plan.others.isdisjoint(raw.data)) or (
            "image" in raw.data and spec.image_input is None
        ):
            self.check_not_taken(raw, where, spec)
        mine = layers[-1] if layers[-1].where is not None and layers[-1].prefix else None
        self.check_block(raw, spec, mine)
        self.check_job_blocks(raw, label)
        merged: dict[str, Any] = {}
        origin: dict[str, Layer] = {}
        rank: dict[str, int] = {}
        for number, layer in enumerate(layers):
            for key, value in layer.values.items():
                merged[key], origin[key], rank[key] = value, layer, number
        before = self.ctx.issues.count
        files, attempted = self.file_checks.resolve(raw, plan, merged, origin, rank)
        merged.pop("image", None)
        for name, message in spec.input_problems(merged):
            found = origin.get(name or "")
            if name in self.file_checks.reported:
                continue  # said more precisely by the file checks
            if name is None:
                self.ctx.issue(raw, raw.line, f"{where}: {message}")
            elif found is not None and found.where is not None:  # others: reported there
                line = found.line_of(name)
                self.ctx.issue(raw, line, f"{where} field '{found.prefix}{name}': {message}")
        self.check_required(raw, where, spec, plan, merged, attempted)
        if self.ctx.issues.count != before or files is None:
            return None
        return self.resolve(spec, model, label, merged, files)

    def check_not_taken(self, raw: RawJob, where: str, spec: ModelSpec) -> None:
        """Inputs of another model of the manifest that this job's model does not take."""
        for key in raw.data:
            if key in self.inputs_union and key not in spec.properties:
                self.ctx.issue(raw, raw.line_of(key), self.not_taken(where, spec, key))
            elif key == "image" and spec.image_input is None:
                self.ctx.issue(
                    raw, raw.line_of(key), f"{where}: model {spec.name} takes no image input"
                )

    @staticmethod
    def not_taken(where: str, spec: ModelSpec, key: str) -> str:
        hint = suggest(key, spec.properties)
        close = f" (did you mean {show(hint)}?)" if hint else ""
        return (
            f"{where}: {spec.name} takes no input {show(key)}{close}; inputs for one model "
            "only go in a per-model block ('models:')"
        )

    def check_block(self, raw: RawJob, spec: ModelSpec, layer: Layer | None) -> None:
        """Unknown keys in the job's own block for this model."""
        if layer is None:
            return
        for key in layer.values:
            if key not in (*spec.properties, "image"):
                message = unknown_key_message(key, [*spec.properties, "image"], "input")
                block = layer.prefix.rstrip(".")
                self.ctx.issue(raw, layer.line_of(key), f"{layer.where} in '{block}': {message}")

    def check_job_blocks(self, raw: RawJob, label: str) -> None:
        """A job's ``models`` block may only name models the job runs on."""
        blocks = raw.data.get("models")
        if not isinstance(blocks, dict):
            return
        mine = self.models_of(raw)
        for model in blocks:
            if model not in mine:
                used = ", ".join(mine) or "none"
                self.ctx.issues.once(
                    raw.file,
                    raw.line_of("models"),
                    f"{label}: 'models' has a block for {show(model)}, which this job does not "
                    f"run on (it runs on {used})",
                )

    # -- required inputs -----------------------------------------------------------------

    def check_required(
        self,
        raw: RawJob,
        where: str,
        spec: ModelSpec,
        plan: SpecPlan,
        merged: dict[str, Any],
        attempted: set[str],
    ) -> None:
        for name, keys in plan.required:
            if any(k in merged or k in self.axis_lines for k in keys) or name in attempted:
                continue
            if name in self.misspelt:
                continue  # already reported as a misspelling ("did you mean")
            hint = ""
            if name == spec.image_input:
                if "image" in raw.data or self.image_elsewhere(spec):
                    continue
                hint = " (or 'image' for a local file)"
            self.ctx.issue(
                raw,
                raw.line,
                f"{where}: missing required input '{name}'{hint}; set it in the job or in "
                "'defaults'",
            )

    def image_elsewhere(self, spec: ModelSpec) -> bool:
        """An ``image`` in defaults or the model's block (a bad one was reported there)."""
        ctx = self.ctx
        block = ctx.blocks.get(spec.name)
        return (ctx.defaults is not None and "image" in ctx.defaults.values) or (
            block is not None and "image" in block.values
        )

    # -- a valid job -------------------------------------------------------------------------

    def resolve(
        self,
        spec: ModelSpec,
        model: str,
        label: str,
        merged: dict[str, Any],
        files: list[tuple[FileSpec, list[FileRef]]],
    ) -> Partial:
        """A valid job's inputs as the API's strings, under the names they are sent as."""
        file_keys = spec.files
        inputs = {k: spec.normalise(k, v) for k, v in merged.items() if k not in file_keys}
        image = image_sha256 = None
        inputs_files: list[FileInput] = []
        tokens: dict[str, list[str]] = {}
        counts: dict[str, int] = {}
        for fs, refs in files:
            counts[fs.name] = len(refs)
            local = [r for r in refs if r.path is not None]
            if not local:
                inputs[fs.send] = wire_urls(fs, [str(r.url) for r in refs])
                continue
            inputs[fs.send] = ""  # filled with the uploaded files' URLs at run time
            inputs_files.append(FileInput(fs.name, fs.send, fs.kind, tuple(refs)))
            if fs.name == spec.image_input:
                image = local[0].path  # the job's input image, for reports
            if fs.kind == "url":
                image_sha256 = local[0].sha256
            else:
                tokens[fs.send] = [r.token for r in refs]
        return Partial(
            spec=spec,
            label=label,
            merged_raw={} if spec.separable else merged,
            inputs=inputs,
            image=image,
            image_sha256=image_sha256,
            files=tuple(inputs_files),
            tokens=tokens or None,
            counts=counts or None,
            spec_key=model,
        )

    def base_id(self, raw: RawJob, parts: dict[str, Partial]) -> str:
        """The job's own id, else one derived from its own content (the same on every model
        it runs on); repeats get -2, -3, ..."""
        given = raw.data.get("id")
        if isinstance(given, str):
            return given
        own: dict[str, str] = {}
        image_sha256 = None
        first = next(iter(parts.values()))
        local = {f.name: f for f in first.files}
        for key, value in raw.data.items():
            fs = first.spec.files.get(key)
            if key in JOB_KEYS:
                continue
            if key == "models":
                own[key] = canonical_json(value).decode("utf-8")
            elif fs is not None and fs.name in local:  # local files count by their content
                own[key] = ",".join(ref.token for ref in local[fs.name].refs)
            else:
                own[key] = normalise_value(value)
        if "image" in raw.data:
            image_spec = first.spec.image_spec
            if image_spec is not None and image_spec.kind != "url" and image_spec.name in local:
                # the same job as one that names the input itself (``inputImage: a.png``)
                tokens = ",".join(ref.token for ref in local[image_spec.name].refs)
                own[image_spec.name] = tokens
            else:
                image_sha256 = self.image_sha(raw.data["image"], first)
        own_hash = content_hash(own, image_sha256)
        count = self.occurrences[own_hash] = self.occurrences.get(own_hash, 0) + 1
        return derive_job_id(own.get("prompt"), own_hash, count)

    def image_sha(self, value: Any, part: Partial) -> str | None:
        if part.image_sha256 is not None:
            return part.image_sha256
        if isinstance(value, str):
            path = self.ctx.files.resolve(value)
            for f in part.files:
                for ref in f.refs:
                    if ref.path == path:
                        return ref.sha256
        return None

    # -- structure -----------------------------------------------------------------------------

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
            where = f"{label} field '{'.'.join(str(p) for p in path)}'" if name else label
            self.ctx.issue(raw, raw.line_of(name) if name else raw.line, f"{where}: {message}")
        if reason is not None and not id_reported:
            self.ctx.issue(raw, raw.line_of("id"), f"{label} field 'id': {show(job_id)} {reason}")
        if isinstance(job_id, str):
            self.check_duplicate_id(raw, label, job_id)
        if not self.known.issuperset(data) or self.axis_lines.keys() & data.keys():
            self.check_keys(raw, label)
        return label

    def check_keys(self, raw: RawJob, label: str) -> None:
        """Unknown keys (with a "did you mean"), and keys the matrix also sets."""
        for key in raw.data:
            if key not in self.known:
                message = unknown_key_message(key, self.known_ordered, "input", MODEL_KEYS)
                self.ctx.issue(raw, raw.line_of(key), f"{label}: {message}")
                self.misspelt.add(suggest(key, self.known_ordered) or "")
            elif key in self.axis_lines:
                self.ctx.issue(
                    raw,
                    raw.line_of(key),
                    f"{label} field '{key}' is also set by the matrix "
                    f"(line {self.axis_lines[key]}); remove one",
                )

    def check_duplicate_id(self, raw: RawJob, label: str, job_id: str) -> None:
        """Explicit ids must differ in more than letter case (they name files)."""
        first = self.explicit_ids.setdefault(job_id.casefold(), (job_id, raw))
        first_id, first_raw = (first.id, first) if isinstance(first, Where) else first
        if first_raw is raw:
            return
        where = f"{first_raw.file}:{first_raw.line_of('id')}"
        case = ""
        if first_id != job_id:
            case = f" ({show(first_id)} there differs only in letter case: same file name)"
        message = f"{label}: duplicate id {show(job_id)}, already used at {where}{case}"
        self.ctx.issue(raw, raw.line_of("id"), message)

    def expand(self) -> list[Job]:
        """Every valid base job times every matrix combination, with ids and fingerprints."""
        return Expansion(self.ctx, self.bases, self.explicit_ids).jobs()
