"""Jobs that share a shape share their checks: what the builder's fast path works out once.

Most jobs of a large manifest have the same keys in the same order (``id``, ``prompt``,
``inputImageUrl``, ...) on the same model, with the same ``defaults`` under them. Whether such
a job can be wrong in any way that depends on its keys alone (an unknown or misspelt key, a
required input missing, an input of another model, a key the matrix sets too, local files
to check, a per-model block) is the same for all of them. :func:`shape_for` answers that
once per shape and, when nothing can be, says what is left to check per job: each own value
against its input's schema. The builder then checks a job in a few microseconds; a job of
any other shape, or one whose values fail, takes the full path, which reports every problem
in its own words. Pure: no I/O, no issues recorded here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .schemacheck import compile_fast
from .spec import ModelSpec

Predicate = Callable[[Any], bool]


@dataclass(frozen=True, slots=True)
class Shape:
    """What every job with these keys on one model shares.

    ``own`` are the job's inputs in its order; ``checks`` holds one predicate per own input
    and whether its value also has numeric bounds as text (None: the model's schema spans
    fields, so each job's merged inputs are checked whole); ``static_inputs`` are the
    inputs the job does not set, as the API's strings, in the order the full path gives;
    ``static_raw`` the same values as written (for the whole-schema check); ``price``, when
    ``priced``, the estimate of every job of the shape (its own inputs do not move it).
    """

    spec: ModelSpec
    model: str
    own: tuple[str, ...]
    #: the job schema's checks of the shape's keys that are not inputs (``id``, ``model``)
    structure: tuple[tuple[str, Predicate], ...]
    checks: tuple[tuple[str, Predicate, bool], ...] | None
    static_inputs: dict[str, str]
    static_raw: dict[str, Any]
    priced: bool
    price: float | None


@dataclass(frozen=True, slots=True)
class ShapeContext:
    """The builder's facts a shape depends on (see :class:`~.builder.JobBuilder`)."""

    known: frozenset[str]
    axis_keys: frozenset[str]
    static: Mapping[str, Any]  # defaults and the model's block merged, as written
    taken: frozenset[str]  # the model's inputs (and ``image``)
    others: frozenset[str]  # inputs of the manifest's other models this one lacks
    files: list[tuple[str, Any, tuple[str, ...]]]  # file input, its FileSpec, its keys
    required: list[tuple[str, tuple[str, ...]]]
    job_schema: Mapping[str, Any]  # the manifest schema's ``$defs.job``
    root_schema: Mapping[str, Any]  # what its ``$ref``s point into


def shape_for(
    keys: tuple[str, ...], spec: ModelSpec, model: str, ctx: ShapeContext
) -> Shape | None:
    """The shared checks of jobs with exactly ``keys`` on ``model``, or None when a job of
    this shape could have a problem its values alone do not show (the full path decides)."""
    if "id" not in keys or "image" in keys or "models" in keys:
        return None  # derived ids, local images and per-job blocks: the full path
    if not ctx.known.issuperset(keys) or not ctx.others.isdisjoint(keys):
        return None
    structure = _structure(keys, ctx)
    if structure is None:
        return None
    own = tuple(k for k in keys if k in ctx.taken)
    merged = [*ctx.static, *(k for k in own if k not in ctx.static)]
    if not ctx.axis_keys.isdisjoint(merged):
        return None
    present = set(merged)
    attempted = set()
    for name, fs, candidates in ctx.files:
        found = [k for k in candidates if k in present]
        if not found:
            continue
        attempted.add(name)
        if len(found) > 1 or found[0] == "image" or fs.kind != "url":
            return None  # local files or URLs of a file input: the full path reads them
    for name, req_keys in ctx.required:
        if name not in attempted and not any(k in present for k in req_keys):
            return None  # reported (or excused by an ``image`` elsewhere) by the full path
    file_keys = spec.files
    static_raw = {k: v for k, v in ctx.static.items() if k != "image"}
    static_inputs = {k: spec.normalise(k, v) for k, v in static_raw.items() if k not in file_keys}
    if not file_keys.keys().isdisjoint(own):
        return None
    checks: tuple[tuple[str, Predicate, bool], ...] | None = None
    if spec.separable:
        properties = spec.checker.schema.get("properties", {})
        found_checks = []
        for key in own:
            check = compile_fast(properties.get(key, True), spec.checker.schema)
            if check is None:
                return None
            found_checks.append((key, check, key in spec.bounds))
        checks = tuple(found_checks)
    definition = spec.definition
    priced = definition is None or definition.prices.ignores(own)
    price = definition.prices.estimate(static_inputs).usd if definition and priced else None
    return Shape(spec, model, own, structure, checks, static_inputs, static_raw, priced, price)


def _structure(
    keys: tuple[str, ...], ctx: ShapeContext
) -> tuple[tuple[str, Predicate], ...] | None:
    """The job schema's check of each key it names; None when it says more than that
    (a keyword of its own, a key it constrains otherwise), or names an input."""
    schema = ctx.job_schema
    if (
        set(schema) - {"description", "type", "x-messages", "properties"}
        or schema.get("type") != "object"
    ):
        return None
    properties = schema.get("properties", {})
    found = []
    for key in keys:
        if key == "id":
            continue  # id_problem() checks it, $defs.job_id's pattern included (a test says so)
        if key in properties:
            if key in ctx.taken:
                return None
            check = compile_fast(properties[key], ctx.root_schema)
            if check is None:
                return None
            found.append((key, check))
    return tuple(found)
