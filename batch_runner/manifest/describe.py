"""What one model input takes, in words: the comment ``batch-runner init`` writes above it
and the description its editor schema gives it (pure).

Type as the record writes it, required or optional (as a manifest sees it: an input with a
default need not be written), default, allowed values with their labels, limits, what a
file input takes (a local path or an http(s) URL, a list where it takes several, its
``XUrl`` spelling, ``image:``), then the record's own label and description. Text from the
record is cut to one line of printable text.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Mapping
from typing import Any

from ..models.items import InputItem
from .spec import ModelSpec

#: Most allowed values listed (the rest are counted).
MAX_LISTED = 24
#: Characters kept of one description from the record.
MAX_NOTE = 400


def clean(text: Any, limit: int = MAX_NOTE) -> str:
    """Record text as one line of printable text (line breaks, tabs and control or format
    characters become spaces), cut to ``limit`` characters."""
    if not isinstance(text, str):
        return ""
    chars = [" " if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") else c for c in text]
    line = " ".join("".join(chars).split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


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
