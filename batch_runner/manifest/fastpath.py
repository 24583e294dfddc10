"""The fast path of checking a job: a job of a shape seen before (the same keys on the same
model) whose own values pass that shape's checks at once is kept exactly as the full checks
of :mod:`.builder` would keep it (see :mod:`.shapes`), without them and holding none of its
YAML; with no matrix it becomes its :class:`~.job.Job` there and then. Anything else goes
to the full checks, which also word every message.

This runs for nearly every job of a large manifest, 100,000 times; the values many jobs
repeat (``"5"``, an image URL, a price) are held once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .checked import Base, Partial, Where
from .job import id_problem, quick_job
from .shapes import Shape, ShapeContext, shape_for
from .sources import RawJob

if TYPE_CHECKING:
    from .builder import JobBuilder

#: Values of an input looked at before deciding whether they repeat (see
#: :meth:`FastPath.shared_value`).
REPEAT_PROBE = 2048
#: Not looked at yet.
_FIRST: dict[str, str] = {}
_UNKNOWN = object()


class FastPath:
    """The fast path of ``builder``'s jobs, with the tables it keeps across them. It adds
    to the builder's own ``bases`` and ``explicit_ids``, held here directly (the hot path)."""

    def __init__(self, builder: JobBuilder) -> None:
        self.builder = builder
        self.bases = builder.bases
        self.explicit_ids = builder.explicit_ids
        self.single = builder.single
        self.shapes: dict[tuple[tuple[str, ...], str], Shape | None] = {}
        #: normalised values shared between jobs ("5" for every ``duration: 5``)
        self.short: dict[str, str] = {}
        self.prices: dict[float, float] = {}
        #: by input: its values seen so far, for one string per repeated value (an image URL
        #: shared by many jobs); None once the input's values turn out mostly distinct
        self.repeats: dict[str, dict[str, str] | None] = {}

    def inputs_of(self, shape: Shape, data: dict[str, Any]) -> dict[str, str]:
        """A fast-path job's inputs: the shape's static ones, then its own, normalised,
        short and repeated values shared between jobs."""
        inputs = dict(shape.static_inputs)
        short, repeats, spec = self.short, self.repeats, shape.spec
        for key in shape.own:
            value = data[key]
            if type(value) is not str:
                value = spec.normalise(key, value)
                value = short.setdefault(value, value) if len(value) <= 16 else value
            elif (seen := repeats.get(key, _FIRST)) is not None:
                value = self.shared_value(key, value, seen)
            inputs[key] = value
        return inputs

    def shared_value(self, key: str, value: str, seen: dict[str, str]) -> str:
        """``value``, or the equal string an earlier job of this input holds. An input
        whose first :data:`REPEAT_PROBE` values are mostly distinct (prompts) is not
        looked up again (their table goes)."""
        if seen is _FIRST:
            seen = self.repeats[key] = {}
        shared = seen.setdefault(value, value)
        if len(seen) >= REPEAT_PROBE and len(seen) * 4 > self.builder.ordinal * 3:
            self.repeats[key] = None
        return shared

    def check(self, raw: RawJob, data: dict[str, Any]) -> bool:
        """Keep a job of a known shape whose own values pass their checks exactly as the
        full path would keep it (see :mod:`.shapes`), holding none of its YAML; False: the
        full path checks it (and reports what is wrong)."""
        shape = self.shape_of(data)
        if shape is None:
            return False
        job_id = data["id"]
        if type(job_id) is not str or id_problem(job_id) is not None:
            return False
        for key, check in shape.structure:
            if not check(data[key]):
                return False
        folded = job_id.casefold()
        if folded == job_id:
            folded = job_id  # one string, not two, for a lower-case id
        if folded in self.explicit_ids:
            return False
        spec = shape.spec
        merged: dict[str, Any] = {}
        if shape.checks is None:
            merged = {**shape.static_raw, **{key: data[key] for key in shape.own}}
            if spec.input_problems(merged):
                return False
        else:
            for key, check, bounded in shape.checks:
                value = data[key]
                if not check(value) or (bounded and spec.bound_problem(key, value)):
                    return False
        inputs = self.inputs_of(shape, data)
        where = Where(job_id, raw.file, raw.line, raw.line_of("id"), self.builder.ordinal)
        self.explicit_ids[folded] = where
        if self.single:  # no matrix: the job itself, now (expand() makes one per base)
            if shape.priced:
                estimate = shape.price
            else:
                definition = spec.definition
                estimate = definition.prices.estimate(inputs).usd if definition else None
                if estimate is not None:  # one float per price, not per job
                    estimate = self.prices.setdefault(estimate, estimate)
            source = f"{raw.rel}:{raw.line}"
            # no fingerprint yet: the job computes it when first asked for (quick_job)
            self.bases.append(quick_job(job_id, len(self.bases), inputs, source, spec.name,
                                        estimate))  # fmt: skip
            return True
        light = RawJob(None, raw.line, {"id": where.id_line}, raw.file, raw.rel)
        label = where.label(job_id)
        part = Partial(spec, label, merged, inputs, None, None, (), None, None, shape.model)
        self.bases.append(Base(light, label, job_id, part))
        return True

    def shape_of(self, data: dict[str, Any]) -> Shape | None:
        """The shared checks of jobs with ``data``'s keys on its model (cached)."""
        builder = self.builder
        ctx = builder.ctx
        model = data.get("model", ctx.default_model)
        if type(model) is not str:
            return None
        key = (tuple(data), model)
        found = self.shapes.get(key, _UNKNOWN)
        if found is not _UNKNOWN:
            return found  # type: ignore[return-value]
        shape = None
        spec = ctx.specs.get(model)
        if spec is not None and ctx.model_axis is None:
            plan = builder.plan_for(spec, model)
            static = {k: v for layer in plan.static for k, v in layer.values.items()}
            facts = ShapeContext(
                known=builder.known,
                axis_keys=frozenset(builder.axis_lines),
                static=static,
                taken=plan.taken,
                others=plan.others,
                files=plan.files,
                required=plan.required,
                job_schema=ctx.job_checker.root["$defs"]["job"],
                root_schema=ctx.job_checker.root,
            )
            shape = shape_for(key[0], spec, model, facts)
        if len(self.shapes) < 4096:
            self.shapes[key] = shape
        return shape
