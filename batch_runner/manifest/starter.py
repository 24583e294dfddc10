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
placeholders, examples) is hostile input: comments are cut to one line of printable text and
values are written by PyYAML's emitter, so nothing in a record can add a key or a line.
"""

from __future__ import annotations

import json
import math
import textwrap
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from ..models.definition import ModelDefinition
from ..models.items import InputItem
from ..models.schema import CALLBACK, RESERVED, derive_schema
from .spec import ModelSpec, file_entries, is_url, spec_for

#: Longest comment line written (the values' own lines may be longer).
WIDTH = 96
#: Most allowed values listed in a comment (the rest are counted).
MAX_LISTED = 24
#: Characters kept of one description from the record.
MAX_NOTE = 400
_SAMPLE_FILES = {"image": ("images", "png"), "video": ("videos", "mp4"), "audio": ("audio", "wav")}


@dataclass(frozen=True)
class Line:
    """One input as the starter writes it: ``key: value`` (``text`` is the value as YAML),
    commented out unless ``active``, under a comment (``notes``). ``stand_in`` marks a value
    made up for a required input the model gives no example of."""

    key: str
    value: Any
    text: str
    notes: str
    active: bool
    stand_in: bool = False
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
    example: dict[str, Any] = field(default_factory=dict)
    unsettable: tuple[str, ...] = ()

    @property
    def values(self) -> dict[str, Any]:
        """The inputs the manifest sets (defaults merged under the job)."""
        return {ln.key: ln.value for ln in (*self.defaults, *self.job) if ln.active}


# -- text from the record ---------------------------------------------------------------------


def clean(text: Any, limit: int = MAX_NOTE) -> str:
    """Record text as one line of printable text (line breaks, tabs and control or format
    characters become spaces), cut to ``limit`` characters."""
    if not isinstance(text, str):
        return ""
    chars = [" " if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") else c for c in text]
    line = " ".join("".join(chars).split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def scalar(value: Any) -> str:
    """``value`` as one line of YAML that reads back as the same value (strings quoted when
    YAML would read them otherwise, escaped when they hold line breaks)."""
    if isinstance(value, list):
        return "[" + ", ".join(scalar(v) for v in value) + "]"
    out = yaml.safe_dump(value, allow_unicode=True, width=math.inf, default_flow_style=True)
    out = out.removesuffix("\n...\n").rstrip("\n")
    if "\n" in out:
        out = yaml.safe_dump(value, allow_unicode=True, width=math.inf, default_style='"')
        out = out.rstrip("\n")
    return out


def _items_of(parameters: Any) -> list[Mapping[str, Any]]:
    """The raw items of a record's ``parameters`` (tolerant: the definition checked them)."""
    if isinstance(parameters, str):
        try:
            parameters = json.loads(parameters)
        except ValueError:
            return []
    if isinstance(parameters, Mapping):
        parameters = [parameters]
    found: list[Mapping[str, Any]] = []
    for group in parameters if isinstance(parameters, list) else ():
        items = group.get("items") if isinstance(group, Mapping) else None
        found += [item for item in items or () if isinstance(item, Mapping)]
    return found


def placeholders(tool: Mapping[str, Any]) -> dict[str, str]:
    """Each input's placeholder text from the record, where it gives one."""
    found: dict[str, str] = {}
    for raw in _items_of(tool.get("parameters")):
        name, text = raw.get("id"), raw.get("placeholder")
        if isinstance(name, str) and isinstance(text, str) and text.strip():
            found[name] = text.strip()[:4096]
    return found


def examples(tool: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The record's ``inspire`` examples: mappings of input names to plain values."""
    raw = tool.get("inspire")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return []
    if isinstance(raw, Mapping):
        raw = [raw]
    found: list[dict[str, Any]] = []
    for example in raw[:50] if isinstance(raw, list) else ():
        if isinstance(example, Mapping):
            found.append({k: v for k, v in example.items() if isinstance(k, str) and _plain(v)})
    return found


def _plain(value: Any) -> bool:
    if isinstance(value, list):
        return 0 < len(value) <= 100 and all(isinstance(v, str) for v in value)
    return isinstance(value, str | int | float | bool) and not (
        isinstance(value, float) and not math.isfinite(value)
    )


# -- values -------------------------------------------------------------------------------------


def native(spec: ModelSpec, key: str, value: Any) -> Any | None:
    """The YAML value to write for ``value`` of input ``key``: a number or boolean where the
    schema takes one and it stands for the same text (``duration: 5``), else the value as
    given; None when the schema refuses it."""
    if not _plain(value):
        return None
    if key in spec.files:  # an example's files must be URLs: a local path may not exist here
        entries, problem = file_entries(spec.files[key], key, value)
        if problem is not None or not entries or not all(is_url(e) for e in entries):
            return None
    candidates: list[Any] = [value]
    if isinstance(value, str):
        text = value.strip()
        word = {v: k == "true" for k, v in spec.booleans.get(key, {}).items()}
        if text in word:
            candidates.insert(0, word[text])
        elif text in ("true", "false"):
            candidates.insert(0, text == "true")
        try:
            number = float(text)
        except ValueError:
            number = math.nan
        if math.isfinite(number):
            candidates.insert(0, int(number) if number.is_integer() else number)
    for candidate in candidates:
        same = not isinstance(value, str) or spec.normalise(key, candidate) == value
        if same and not spec.input_problems({key: candidate}):
            return candidate
    return None


def render(spec: ModelSpec, key: str, value: Any) -> str:
    """A value as YAML; a choice read from YAML booleans is written as its own word
    (``sound: off``, which the loader reads back as "off")."""
    if isinstance(value, bool) and key in spec.booleans:
        word = spec.booleans[key]["true" if value else "false"]
        if yaml.safe_load(word) is value:
            return word
    return scalar(value)


def _sample_file(item: InputItem) -> str:
    folder, ext = _SAMPLE_FILES.get(item.accepts or "image", _SAMPLE_FILES["image"])
    return f"{folder}/{item.name}.{ext}"


def _shown(spec: ModelSpec, item: InputItem, placeholder: str | None) -> Any:
    """The value a commented line shows: the default, else the placeholder, else a sample."""
    if item.is_file:
        sample = _sample_file(item)
        return [sample, sample.replace(".", "-2.", 1)] if item.kind != "file" else sample
    for candidate in (item.default or None, placeholder):
        if candidate is not None and (found := native(spec, item.name, candidate)) is not None:
            return found
    if item.kind == "choice" and item.choices:
        return native(spec, item.name, item.choices[0]) or item.choices[0]
    if item.kind == "number":
        return _number_stand_in(item)
    return ""


def _number_stand_in(item: InputItem) -> int | float:
    low = item.minimum if item.minimum is not None else 0.0
    if item.maximum is not None:
        low = min(low, item.maximum)
    if item.integer:
        return math.ceil(low)
    return int(low) if float(low).is_integer() else low


def _stand_in(spec: ModelSpec, item: InputItem) -> Any:
    """A value for a required input the model gives nothing for."""
    if item.is_file:
        return "https://example.com/" + _sample_file(item)
    if item.kind == "choice":
        for choice in item.choices:
            if choice and (found := native(spec, item.name, choice)) is not None:
                return found
    if item.kind == "number":
        return _number_stand_in(item)
    return f"your {clean(item.label, 60).lower() or item.name} here"


# -- comments -------------------------------------------------------------------------------------


def _fmt(number: float) -> str:
    return f"{int(number):,}" if float(number).is_integer() else repr(float(number))


def said(value: str) -> str:
    """An API value as a comment shows it: as is, or in double quotes when it is empty or
    holds spaces, commas or quotes."""
    plain = value and not any(c.isspace() or c in ",\"'#" for c in value)
    return value if plain else json.dumps(value, ensure_ascii=False)


def _squash(text: str) -> str:
    return "".join(c for c in text.lower() if c.isalnum())


def _choices(item: InputItem, prop: Mapping[str, Any]) -> list[str]:
    enum = prop.get("enum")
    if isinstance(enum, list) and any(isinstance(v, str) for v in enum):
        values = [v for v in enum if isinstance(v, str)]
    else:
        values = list(item.choices)
    labels = {o.value: clean(o.label, 60) for o in item.options}
    shown = []
    for value in values[:MAX_LISTED]:
        label = labels.get(value, "")
        text = said(value)
        shown.append(f"{text} ({label})" if label and _squash(label) != _squash(value) else text)
    more = len(values) - MAX_LISTED
    return shown + ([f"and {more:,} more"] if more > 0 else [])


def _limits(item: InputItem, prop: Mapping[str, Any]) -> list[str]:
    facts: list[str] = []
    if item.kind == "number":
        low, high = prop.get("minimum", item.minimum), prop.get("maximum", item.maximum)
        words = "an integer" if item.integer else "a number"
        if low is not None and high is not None:
            words += f" from {_fmt(low)} to {_fmt(high)}"
        elif low is not None:
            words += f" of at least {_fmt(low)}"
        elif high is not None:
            words += f" of at most {_fmt(high)}"
        if item.step is not None and not (item.integer and item.step == 1):
            words += f", step {_fmt(item.step)}"
        facts.append(words)
    length = prop.get("maxLength", item.max_length)
    if item.kind == "text" and isinstance(length, int):
        facts.append(f"at most {length:,} characters")
    return facts


def _file_facts(spec: ModelSpec, item: InputItem) -> list[str]:
    what = f"{item.accepts} file" if item.accepts else "file"
    several = item.kind in ("files", "combine")
    text = f"a local {what} (a path relative to this manifest) or an http(s) URL"
    if several:
        most = f", at most {item.max_files}" if item.max_files else ""
        text += f", or a list of them{most}"
    facts = [text + "; local files are checked and uploaded once"]
    alias = item.url_field
    if alias != item.name and alias in spec.properties:
        urls = "http(s) URLs only, comma-separated or as a list" if several else "a URL only"
        facts.append(f"written as {alias}: {urls}")
    if spec.image_input == item.name:
        facts.append("'image: FILE' fills it too")
    return facts


def notes(
    spec: ModelSpec, item: InputItem, prop: Mapping[str, Any], derived: Mapping[str, Any]
) -> str:
    """The comment above one input: type, required or not, default, allowed values, limits,
    what a file input takes, the record's own words."""
    definition = spec.definition
    required = definition is not None and item.name in definition.schema.get("required", ())
    head = [item.type if item.known else f"{item.type} (passed through as text)"]
    head.append("required" if required else "optional")
    if item.default not in (None, ""):
        head.append(f"default {said(item.default)}")
    if item.advanced:
        head.append("advanced")
    facts = _limits(item, prop)
    if item.kind == "choice":
        facts.append("one of: " + ", ".join(_choices(item, prop)))
    if item.is_file:
        facts += _file_facts(spec, item)
    elif spec.image_input == item.name:
        facts.append("'image: FILE' fills it from a local file")
    label, description = clean(item.label, 80), clean(item.description)
    words = [description]
    if (
        label
        and _squash(label) != _squash(item.name)
        and _squash(label) not in _squash(description)
    ):
        words.insert(0, label)
    own = prop.get("description")
    if isinstance(own, str) and own != derived.get("description"):
        words.append(clean(own))  # a hand-tuned schema's own words
    text = ", ".join(head) + ("; " + "; ".join(facts) if facts else "")
    extra = ". ".join(w[0].upper() + w[1:].rstrip(".") for w in dict.fromkeys(words) if w)
    return f"{text}. {extra}." if extra else f"{text}."


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
            if item is not None and (value := _stand_in(spec, item)) is not None:
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
    example = dict(values)
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
            line = Line(key, values[key], render(spec, key, values[key]), text, True,
                        key in stand_ins, name if key != name else "")  # fmt: skip
        else:
            shown = _shown(spec, item, holders.get(name))
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
        example,
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
