"""Values for a starter manifest: the record's examples and placeholders, checked against the
model's schema, stand-ins for required inputs it gives nothing for, and each value written
as one line of YAML that reads back as the same value (pure).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import yaml

from ..models.items import InputItem
from .describe import clean
from .spec import ModelSpec, file_entries, is_url

_SAMPLE_FILES = {"image": ("images", "png"), "video": ("videos", "mp4"), "audio": ("audio", "wav")}


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


def shown_value(spec: ModelSpec, item: InputItem, placeholder: str | None) -> Any:
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


def stand_in(spec: ModelSpec, item: InputItem) -> Any:
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
