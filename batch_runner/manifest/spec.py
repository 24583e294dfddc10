"""A model's inputs as the manifest loader checks them: its definition's schema, compiled once,
and what each file input takes and how it is sent.

Manifest keys are the API's input names, plus, for a file input ``X``, its URL spelling
``XUrl`` (as API pages write it) and the ``image`` shorthand for the model's image input.
Values of a file input are local paths or http(s) URLs (several, as a list, for inputs that
take several); local files are uploaded at run time and sent as URLs in the field the
input's type asks for.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..models.definition import ModelDefinition
from .job import normalise_value
from .schemacheck import Checker, numeric_string_bounds, problem, show

_SEPARABLE_KEYWORDS = frozenset(
    {"$schema", "$id", "$comment", "$defs", "title", "description", "type", "properties"}
    | {"additionalProperties", "required"}
)
_NUMBER_TEXT = re.compile(r"^[+-]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][+-]?[0-9]+)?$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


@dataclass(frozen=True, slots=True)
class FileSpec:
    """One input that takes files: ``name`` (the model's input), ``kind`` (``file``,
    ``files``, ``combine``, or ``url`` for a URL text input that ``image`` fills), ``send``
    (the field its URLs go in), the most files it takes, and the kind of file expected."""

    name: str
    kind: str
    send: str
    max_files: int | None = None
    accepts: str | None = None

    @property
    def several(self) -> bool:
        return self.kind in ("files", "combine")


def _fmt(number: float | None) -> str:
    if isinstance(number, float) and number.is_integer():
        return str(int(number))
    return str(number)


@dataclass(slots=True)
class ModelSpec:
    """A model's input schema, compiled once per load.

    ``separable`` means the schema only constrains fields one by one, so a job whose fields
    were each checked needs no further check per matrix combination. ``files`` maps every
    manifest key of a file input (``X`` and ``XUrl``) to its :class:`FileSpec`;
    ``booleans`` the choices where YAML's true/false stand for other words (on/off).
    """

    name: str
    properties: list[str]
    required: tuple[str, ...]
    image_input: str | None
    checker: Checker
    separable: bool
    bounds: dict[str, tuple[float | None, float | None]]
    definition: ModelDefinition | None = None
    files: dict[str, FileSpec] = field(default_factory=dict)
    booleans: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def image_spec(self) -> FileSpec | None:
        """How the ``image`` shorthand is sent: into a file input, or (PixVerse) as the URL
        of a plain URL input."""
        if self.image_input is None:
            return None
        found = self.files.get(self.image_input)
        return found if found is not None else FileSpec(self.image_input, "url", self.image_input)

    def file_keys(self, name: str) -> tuple[str, ...]:
        """The manifest keys that set file input ``name``."""
        return tuple(key for key, spec in self.files.items() if spec.name == name)

    def input_problems(self, inputs: Mapping[str, Any]) -> list[tuple[str | None, str]]:
        """(field, message) for each field of ``inputs`` the schema refuses, one per field."""
        found: dict[str | None, str] = {}
        for error in self.checker.errors(inputs):
            path = list(error.absolute_path)
            name = str(path[0]) if path else None
            if error.validator in ("required", "additionalProperties") and name is None:
                continue  # reported by the callers, which know which keys are whose
            found.setdefault(name, problem(error))
        for name in self.bounds:
            if name not in found and (message := self.bound_problem(name, inputs.get(name))):
                found[name] = message
        return list(found.items())

    def bound_problem(self, name: str, value: Any) -> str | None:
        """Why a number written as text is out of ``name``'s bounds (JSON Schema's numeric
        keywords ignore strings), or None."""
        low, high = self.bounds[name]
        if not isinstance(value, str):
            return None
        if value.lstrip("-").isdigit():
            number: float = int(value)
        elif _NUMBER_TEXT.fullmatch(value.strip()):
            number = float(value)
        else:
            return None
        if (low is not None and number < low) or (high is not None and number > high):
            if low is not None and high is not None:
                expected = f"{_fmt(low)} to {_fmt(high)}"
            else:
                expected = f"at least {_fmt(low)}" if low is not None else f"at most {high}"
            return f"{show(value)} is out of range: expected {expected}"
        return None

    def normalise(self, name: str, value: Any) -> str:
        """A value the schema accepted, as the API's string (``sound: on`` -> "on")."""
        if isinstance(value, bool) and name in self.booleans:
            return self.booleans[name]["true" if value else "false"]
        return normalise_value(value)


def spec_for(definition: ModelDefinition) -> ModelSpec:
    """The compiled checks of a model's definition."""
    schema = definition.schema
    # Required inputs are checked in code: a local `image` stands in for the image input.
    relaxed = {k: v for k, v in schema.items() if k != "required"}
    properties: dict[str, Any] = schema.get("properties", {})
    files: dict[str, FileSpec] = {}
    for item in definition.file_items:
        spec = FileSpec(item.name, item.kind, item.url_field, item.max_files, item.accepts)
        if item.name in properties:
            files[item.name] = spec
        alias = properties.get(item.url_field)
        if isinstance(alias, Mapping) and alias.get("x-file-alias") == item.name:
            files[item.url_field] = spec
    booleans = {
        name: dict(prop["x-booleans"])
        for name, prop in properties.items()
        if isinstance(prop, Mapping) and isinstance(prop.get("x-booleans"), Mapping)
    }
    image_input = schema.get("x-image-input")
    return ModelSpec(
        name=definition.model,
        properties=list(properties),
        required=tuple(schema.get("required", ())),
        image_input=image_input if isinstance(image_input, str) else None,
        checker=Checker(relaxed),
        separable=all(k in _SEPARABLE_KEYWORDS or k.startswith("x-") for k in schema),
        bounds=numeric_string_bounds(schema),
        definition=definition,
        files=files,
        booleans=booleans,
    )


def is_url(text: str) -> bool:
    return (
        text.startswith(("http://", "https://"))
        and len(text) > 8
        and not any(c.isspace() for c in text)
    )


def file_entries(spec: FileSpec, key: str, value: Any) -> tuple[list[str], str | None]:
    """The files a manifest value names, each a URL or a local path, or why it cannot be
    read. ``XUrl`` keys hold URLs only (comma-separated, for inputs that take several)."""
    if isinstance(value, list):
        entries = [v.strip() for v in value if isinstance(v, str)]
    elif isinstance(value, str):
        text = value.strip()
        entries = [text]
        if text.startswith("[") and spec.several:
            import json

            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = None
            if isinstance(parsed, list) and all(isinstance(v, str) for v in parsed):
                entries = [v.strip() for v in parsed]
        elif "," in text and spec.several and all(is_url(p.strip()) for p in text.split(",")):
            entries = [p.strip() for p in text.split(",")]
    else:
        return [], None  # the schema reported the type
    entries = [e for e in entries if e]
    for entry in entries:
        if _SCHEME.match(entry) and not is_url(entry):
            return [], f"{show(entry)}: only http(s) URLs or local files can be given"
        if key != spec.name and not is_url(entry):
            return [], f"{show(entry)} is not an http(s) URL (give local files in '{spec.name}')"
    if spec.max_files is not None and len(entries) > spec.max_files:
        return [], f"{len(entries)} files given; {spec.name} takes at most {spec.max_files}"
    if len(entries) > 1 and not spec.several:
        return [], f"{len(entries)} files given; {spec.name} takes one"
    return entries, None


def wire_urls(spec: FileSpec, urls: list[str]) -> str:
    """How a file input's URLs are written into its field: one URL, comma-separated URLs,
    or (combinefileinput) a JSON list."""
    if spec.kind == "combine":
        import json

        return json.dumps(urls, separators=(",", ":")) if urls else ""
    return ",".join(urls)


def finite(number: float | None) -> bool:
    return number is not None and math.isfinite(number)
