"""A starter manifest for one model, valid as written: ``batch-runner init``'s library side.

:func:`starter_plan` decides what the manifest holds, from the model's definition alone (no
I/O): the example job is the tool record's first ``inspire`` example, each value checked
against the model's schema (a value the schema refuses, or an input the model lacks, is
left out); a required input the example leaves unset takes a value from the other examples,
else the model's default, else its placeholder, else a stand-in marked as one. Every input
the manifest can set is shown, those not set as commented lines, each with a comment saying
its type, whether it is required, its default, allowed values and limits, and for file
inputs what they take. Choices and numbers go in ``defaults`` (shared settings), text and
files in the job (what changes from job to job).

:func:`starter_text` renders the plan as YAML. Text from the record (titles, descriptions,
placeholders, examples) is hostile input: comments are cut to one line of printable text
(:mod:`.describe`) and values are written by PyYAML's emitter (:mod:`.samples`), so nothing
in a record can add a key or a line.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..models.definition import ModelDefinition
from ..models.items import InputItem
from ..models.schema import CALLBACK, RESERVED, derive_schema
from .describe import clean, notes
from .samples import examples, native, placeholders, render, scalar, shown_value, stand_in
from .spec import ModelSpec, spec_for

#: Longest comment line written (the values' own lines may be longer).
WIDTH = 96


@dataclass(frozen=True)
class Line:
    """One input as the starter writes it: ``key: value`` (``text`` is the value as YAML),
    commented out unless ``active``, under a comment (``notes``)."""

    key: str
    value: Any
    text: str
    notes: str
    active: bool
    #: the model's input, when ``key`` is its URL spelling (``inputImageUrl``)
    name: str = ""


@dataclass(frozen=True)
class StarterPlan:
    """What a starter manifest holds: the lines of ``defaults`` and of the example job, in
    the model's order; ``problems`` lists what the schema still refuses (empty, unless the
    record is odd enough that no value for a required input could be found)."""

    definition: ModelDefinition
    defaults: tuple[Line, ...]
    job: tuple[Line, ...]
    matrix: tuple[str, str] | None
    problems: tuple[str, ...] = ()
    unsettable: tuple[str, ...] = ()


def comment(text: str, indent: str = "", hang: str = "") -> list[str]:
    """``text`` as comment lines at ``indent``, wrapped; ``hang`` indents the lines after
    the first."""
    width = max(40, WIDTH - len(indent) - 2)
    lines = textwrap.wrap(
        text, width, subsequent_indent=hang, break_on_hyphens=False, break_long_words=False
    )
    return [f"{indent}# {line}" for line in lines]


# -- the plan -------------------------------------------------------------------------------------


def _example_values(spec: ModelSpec, found: list[dict[str, Any]]) -> dict[str, Any]:
    """The first example's values that the schema takes, under the keys it wrote."""
    values: dict[str, Any] = {}
    for key, value in (found[0] if found else {}).items():
        if key in RESERVED or key not in spec.properties:
            continue
        input_name = spec.files[key].name if key in spec.files else key
        if any(k in values for k in (*spec.file_keys(input_name), input_name)):
            continue  # the example set this file input twice (X and XUrl): keep the first
        if (written := native(spec, key, value)) is not None:
            values[key] = written
    return values


def _fill_required(
    spec: ModelSpec,
    items: dict[str, InputItem],
    values: dict[str, Any],
    found: list[dict[str, Any]],
    holders: Mapping[str, str],
) -> set[str]:
    """Give each required input the example leaves unset a value; returns the stand-ins."""
    stand_ins: set[str] = set()
    for name in spec.required:
        keys = (*spec.file_keys(name), name) if name in items else (name,)
        if any(k in values for k in keys):
            continue
        later = [(k, e[k]) for e in found[1:] for k in keys if k in e]
        item = items.get(name)
        tries = [*later, (name, item.default if item else None), (name, holders.get(name))]
        for key, value in tries:
            if value not in (None, "") and (written := native(spec, key, value)) is not None:
                values[key] = written
                break
        else:
            if item is not None and (value := stand_in(spec, item)) is not None:
                values[name] = value
                stand_ins.add(name)
    return stand_ins


def _in_job(spec: ModelSpec, item: InputItem) -> bool:
    return item.is_file or item.kind == "text" or spec.image_input == item.name


def starter_plan(definition: ModelDefinition) -> StarterPlan:
    """What the starter manifest of ``definition`` holds (pure)."""
    spec = spec_for(definition)
    properties: Mapping[str, Any] = definition.schema.get("properties", {})
    derived = derive_schema(definition.model, definition.items)["properties"]
    items = {item.name: item for item in definition.items if item.name not in RESERVED}
    found = examples(definition.tool)
    holders = placeholders(definition.tool)
    values = _example_values(spec, found)
    stand_ins = _fill_required(spec, items, values, found, holders)
    defaults: list[Line] = []
    job: list[Line] = []
    unsettable = [
        f"input {item.name!r} of the model cannot be set: it has the name of a manifest key "
        "of batch-runner's own (the service uses its default)"
        for item in definition.items
        if item.name in RESERVED
    ]
    for name, item in items.items():
        prop = properties.get(name)
        if not isinstance(prop, Mapping):  # a hand-tuned schema left it out
            unsettable.append(
                f"input {name!r} is not in this definition's schema: it cannot be set"
            )
            continue
        text = notes(spec, item, prop, derived.get(name, {}))
        keys = [k for k in (*spec.file_keys(name), name) if k in values]
        key = keys[0] if keys else name
        if key in values:
            if key in stand_ins:
                text += " Replace: a stand-in (the model gives no example of it)."
            written = render(spec, key, values[key])
            line = Line(key, values[key], written, text, True, name if key != name else "")
        else:
            shown = shown_value(spec, item, holders.get(name))
            line = Line(name, shown, render(spec, name, shown), text, False)
        (job if _in_job(spec, item) else defaults).append(line)
    aliases = {key for key in spec.files if key not in items}
    for name, prop in properties.items():
        if name in items or name in aliases or not isinstance(prop, Mapping):
            continue
        if name == "callbackUrl":
            words = f"optional; {CALLBACK['description']}."
            value = values.get(name, "https://example.com/hooks/wiro")
            defaults.append(Line(name, value, scalar(value), words, name in values))
        else:
            words = clean(prop.get("description")) or "an input of this definition's schema"
            value = values.get(name, "")
            job.append(Line(name, value, render(spec, name, value), words, name in values))
    problems = [f"{k}: {m}" for k, m in spec.input_problems(values)]
    problems += [f"{n}: no value could be found" for n in spec.required if _unset(spec, values, n)]
    return StarterPlan(
        definition,
        tuple(defaults),
        tuple(job),
        _matrix(spec, items),
        tuple(problems),
        tuple(unsettable),
    )


def _unset(spec: ModelSpec, values: Mapping[str, Any], name: str) -> bool:
    return not any(k in values for k in (*spec.file_keys(name), name))


def _matrix(spec: ModelSpec, items: Mapping[str, InputItem]) -> tuple[str, str] | None:
    """A matrix to show (commented): the first choice with two or more options."""
    for item in items.values():
        choices = [c for c in item.choices if c]
        if item.kind == "choice" and len(choices) >= 2 and item.name not in spec.files:
            shown = [native(spec, item.name, c) for c in choices[:2]]
            if all(v is not None for v in shown):
                texts = ", ".join(render(spec, item.name, v) for v in shown)
                return item.name, f"[{texts}]"
    return None


# -- the text -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Header:
    """What the starter's opening comments say beyond the model: the ``$schema`` reference
    for editors and a sentence on what it is, and the commands to check and run it."""

    schema_ref: str
    schema_note: str
    manifest_name: str = "MANIFEST"
    flags: tuple[str, ...] = ()


def _lines(lines: Sequence[Line], indent: str, out: list[str]) -> None:
    for line in lines:
        out += comment(f"{line.name or line.key}: {line.notes}", indent, "  ")
        written = f"{scalar(line.key)}: {line.text}"
        out.append(f"{indent}{written}" if line.active else f"{indent}# {written}")


_TOP_KEYS = (
    ("# output_dir: outputs/{name}", "where outputs and the ledger go, relative to this file"),
    ("#", "(default: outputs/<manifest name>/, in the current folder)"),
    ("# concurrency: 4", "tasks in flight, 1 to 1024 (--concurrency wins)"),
    ("# publish: s3://my-bucket/prefix", "also upload each verified output: s3://, gs://,"),
    ("#", "az:// or file:/// (--publish wins)"),
)


def _aligned(left: str, right: str, column: int = 36) -> str:
    return f"{left.ljust(column - 1)} # {right}"


def starter_text(plan: StarterPlan, header: Header) -> str:
    """The starter manifest as YAML text (its first line the editors' ``$schema`` line)."""
    d = plan.definition
    name = d.model.rpartition("/")[2]
    flags = "".join(f" {flag}" for flag in header.flags)
    title = clean(d.title, 120)
    about = f"A starter manifest for {d.model}" + (f" ({title})" if title else "")
    out = [f"# yaml-language-server: $schema={header.schema_ref}", "#"]
    out += comment(f"{about}, written by `batch-runner init`. {header.schema_note}")
    if d.description:
        out += ["#", *comment(clean(d.description, 600))]
    out += [
        "#",
        "# Check it (and see the estimated cost), see what a run would send, then run it:",
        f"#   batch-runner validate {header.manifest_name}{flags}",
        f"#   batch-runner run {header.manifest_name}{flags} --dry-run",
        f"#   batch-runner run {header.manifest_name}{flags}",
        "#",
        *comment(
            f"Inputs go under the model's own names (`batch-runner models show {d.model}`). "
            "A commented-out input is left to the service's default: remove the '# ' to set "
            'it. Each value is sent as text (5 as "5", false as "false").'
        ),
        "",
        f"model: {scalar(d.model)}",
        "",
        *(_aligned(left.format(name=name), right) for left, right in _TOP_KEYS),
        "",
    ]
    intro = "merged under every job; a job's own value wins"
    if any(line.active for line in plan.defaults):
        out.append(_aligned("defaults:", intro))
    else:
        out.append(_aligned("# defaults:", "shared by every job; uncomment this line too"))
    _lines(plan.defaults, "  ", out)
    out += ["", "jobs:", _aligned("  - id: example-1", "optional: letters, digits, . _ -; unique")]
    _lines(plan.job, "    ", out)
    for text in plan.unsettable:
        out += comment(f"({text})", "    ", "  ")
    out += [
        "",
        *comment(
            "More jobs: add them to `jobs:`, or read them from a CSV or JSON Lines file beside "
            "this one, whose columns (keys) are input names plus `id` and `image`:"
        ),
        "# jobs_from: jobs.csv",
    ]
    if plan.matrix is not None:
        key, shown = plan.matrix
        out += [
            "# Run every job once for each combination of these values:",
            "# matrix:",
            f"#   {scalar(key)}: {shown}",
        ]
    return "\n".join(out) + "\n"
