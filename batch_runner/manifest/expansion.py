"""The second half of building a manifest's jobs: every base job that passed its checks,
times every matrix combination, named (ids for the combinations, unique letter case aside)
and fingerprinted into :class:`~.job.Job`s."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any, cast

from .checked import Base, Partial, Where
from .context import JobContext
from .job import Job, fingerprint, matrix_job_id
from .schemacheck import show
from .sources import RawJob
from .spec import file_entries, wire_urls


class Expansion:
    """The jobs of ``bases`` (checked by :class:`~.builder.JobBuilder`); ``explicit_ids``
    says where each explicit id was written, for messages about a clash."""

    def __init__(
        self,
        ctx: JobContext,
        bases: list[Base | Job],
        explicit_ids: Mapping[str, Where | tuple[str, RawJob]],
    ) -> None:
        self.ctx = ctx
        self.bases = bases
        self.explicit_ids = explicit_ids

    def combinations(self) -> list[tuple[str | None, list[tuple[str, str]], dict[str, Any]]]:
        """Every matrix combination: its model (None: the job's own), the (name, value)
        pairs its id shows, and its raw input values by name."""
        axes = list(self.ctx.axes)
        model_axis = self.ctx.model_axis
        if model_axis is not None:
            axes.insert(self.model_position(), model_axis)
        result = []
        for combo in itertools.product(*(axis.values for axis in axes)):
            model = None
            pairs: list[tuple[str, str]] = []
            raw_values: dict[str, Any] = {}
            for axis, (raw, norm) in zip(axes, combo, strict=True):
                if axis is model_axis:
                    model = raw
                else:
                    raw_values[axis.name] = raw
                pairs.append((axis.name, norm))
            result.append((model, pairs, raw_values))
        return result

    def model_position(self) -> int:
        """Where the model axis sits among the others (the matrix's own order)."""
        model_line = self.ctx.model_axis.line if self.ctx.model_axis else 0
        return sum(1 for axis in self.ctx.axes if axis.line < model_line)

    def jobs(self) -> list[Job]:
        """Every valid base job times every matrix combination, with ids and fingerprints."""
        if all(type(base) is Job for base in self.bases):
            # All built by the fast path, which leaves a job whose id was seen (letter case
            # aside) to the full path: nothing to expand, and the ids are unique.
            return cast(list[Job], self.bases)
        combos = self.combinations()
        jobs: list[Job] = []
        owners: list[int] = []
        for number, base in enumerate(self.bases):
            if isinstance(base, Job):
                jobs.append(base)
                owners.append(number)
                continue
            source = f"{base.raw.rel}:{base.raw.line}"
            for model, pairs, raw_values in combos:
                part = base.part(model)
                if part is None:
                    continue
                jobs.append(self.job(part, base, pairs, raw_values, len(jobs), source))
                owners.append(number)
        self.check_unique_ids(jobs, owners)
        return jobs

    def job(
        self,
        part: Partial,
        base: Base,
        pairs: list[tuple[str, str]],
        raw_values: dict[str, Any],
        index: int,
        source: str,
    ) -> Job:
        spec = part.spec
        inputs, counts = part.inputs, part.counts or {}
        if raw_values:
            if not spec.separable:
                self.check_combination(part, base.raw, raw_values)
            inputs = dict(inputs)
            counts = dict(counts)
            for name, value in raw_values.items():
                fs = spec.files.get(name)
                if fs is None:
                    inputs[name] = spec.normalise(name, value)
                else:
                    entries, _why = file_entries(fs, name, value)
                    inputs[fs.send] = wire_urls(fs, entries)
                    counts[fs.name] = len(entries)
        job_id = matrix_job_id(base.base_id, pairs) if pairs else base.base_id
        group = job_id
        if self.ctx.model_axis is not None:
            rest = [(name, value) for name, value in pairs if name != "model"]
            group = matrix_job_id(base.base_id, rest) if rest else base.base_id
        definition = spec.definition
        estimate = definition.prices.estimate(inputs, counts).usd if definition else None
        return Job(
            id=job_id,
            index=index,
            inputs=inputs,
            image=part.image,
            fingerprint=fingerprint(spec.name, inputs, part.image_sha256, part.tokens),
            source=source,
            model=spec.name,
            files=part.files,
            estimate=estimate,
            group=group,
        )

    def check_combination(self, part: Partial, raw: RawJob, raw_values: dict[str, Any]) -> None:
        """Cross-field rules of a non-separable model schema, per matrix combination."""
        for name, message in part.spec.input_problems({**part.merged_raw, **raw_values}):
            if name is None:
                text = f"{part.label} with {raw_values}: {message}"
                self.ctx.issues.add(raw.file, raw.line, text)

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
            file, line, label = self.origin(owners[position])
            other_file, other_line, _label = self.origin(owners[first])
            case = ""
            if jobs[first].id != job.id:
                case = " (ids that differ only in letter case name the same file)"
            self.ctx.issues.add(
                file,
                line,
                f"{label}: id {show(job.id)} is already used by the job at "
                f"{other_file}:{other_line}{case}",
            )

    def origin(self, number: int) -> tuple[str, int, str]:
        """The file, id line and label of base job ``number``."""
        base = self.bases[number]
        if isinstance(base, Job):
            where = self.explicit_ids[base.id.casefold()]
            assert isinstance(where, Where)
            return where.file, where.line_of("id"), where.label(base.id)
        return base.raw.file, base.raw.line_of("id"), base.label
