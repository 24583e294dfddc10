"""The JSON Schema of a model's inputs, derived from its items (pure).

The schema checks values as a manifest writes them (YAML numbers and booleans included) and
its descriptions are what error messages show as "expected ...". Annotations the manifest
loader reads:

* ``x-image-input``: the input a job's ``image:`` shorthand fills (the first file input);
* per property, ``x-booleans``: the strings YAML booleans stand for when a choice is
  ``on``/``off`` or ``yes``/``no`` (``sound: on`` is read by YAML as true, sent as "on");
* per property, ``x-file-alias``: this key is the ``<name>Url`` spelling of file input
  ``<name>`` (a URL, as the API page writes it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .items import InputItem

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
URL_PATTERN = "^https?://[^\\s]+$"
_INTEGER_TEXT = "^[+-]?[0-9]+$"
_DECIMAL_TEXT = "^[+-]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][+-]?[0-9]+)?$"
#: The service-level input every model takes (Wiro: "All models support callbackUrl").
CALLBACK = {
    "description": "an http(s) URL that Wiro POSTs the task result to when it completes",
    "type": "string",
    "pattern": URL_PATTERN,
    "maxLength": 4096,
}
_BOOLEAN_PAIRS = (("on", "off"), ("yes", "no"), ("true", "false"))
#: Manifest keys of batch-runner's own: an input of that name cannot be set from a manifest.
RESERVED = frozenset({"id", "image", "model", "models"})


def _fmt(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else repr(float(number))


def _range_words(item: InputItem) -> str:
    low, high = item.minimum, item.maximum
    if low is not None and high is not None:
        return f" from {_fmt(low)} to {_fmt(high)}"
    if low is not None:
        return f" of at least {_fmt(low)}"
    if high is not None:
        return f" of at most {_fmt(high)}"
    return ""


def _text(item: InputItem) -> dict[str, Any]:
    if not item.known:  # an unknown type: anything, passed through as text (JSON for lists)
        return {
            "description": f"a value for an input of type {item.type!r} (sent as text)",
            "type": ["string", "integer", "number", "boolean", "object", "array", "null"],
        }
    words = "non-empty text" if item.required else "text"
    prop: dict[str, Any] = {"type": ["string", "integer", "number"]}
    if not item.required:
        prop["type"].append("null")
    if item.max_length is not None:
        words += f" of at most {item.max_length:,} characters"
        prop["maxLength"] = item.max_length
    if item.required:
        prop["pattern"] = "\\S"
    return {"description": words, **prop}


def _choice(item: InputItem) -> dict[str, Any]:
    values = list(item.choices)
    if not values:  # a select without options: the service decides
        return {"description": "a value", "type": ["string", "integer", "number", "boolean"]}
    enum: list[Any] = list(values)
    enum += [number for v in values if (number := _yaml_number(v)) is not None]
    prop: dict[str, Any] = {
        "description": "one of the model's options",
        "enum": enum,
        "x-suggest": True,
    }
    lowered = {v.lower(): v for v in values}
    for yes, no in _BOOLEAN_PAIRS:
        if yes in lowered and no in lowered:
            enum += [True, False]
            if (yes, no) != ("true", "false"):
                prop["x-booleans"] = {"true": lowered[yes], "false": lowered[no]}
            break
    return prop


def _yaml_number(value: str) -> int | float | None:
    """The YAML number that stands for an option such as "5" or "0.5" (normalised back to
    the same text), else None."""
    try:
        number = float(value)
    except ValueError:
        return None
    if value.lstrip("-").isdigit() and str(int(value)) == value:
        return int(value)
    return number if math.isfinite(number) and repr(number) == value else None


def _number(item: InputItem) -> dict[str, Any]:
    whole = item.integer
    words = ("an integer" if whole else "a number") + _range_words(item)
    types = ["integer", "string"] if whole else ["integer", "number", "string"]
    pattern = _INTEGER_TEXT if whole else _DECIMAL_TEXT
    if not item.required:
        types.append("null")
        pattern = f"^$|{pattern}"
    prop: dict[str, Any] = {"description": words, "type": types, "pattern": pattern}
    if item.minimum is not None:
        prop["minimum"] = item.minimum if not whole else int(item.minimum)
    if item.maximum is not None:
        prop["maximum"] = item.maximum if not whole else int(item.maximum)
    return prop


def _files(item: InputItem, url_only: bool) -> dict[str, Any]:
    what = "an http(s) URL" if url_only else "a local file or an http(s) URL"
    element: dict[str, Any] = {"type": "string", "minLength": 1}
    if url_only:
        element["pattern"] = URL_PATTERN
    if item.kind == "file":
        return {"description": what, **element}
    prop: dict[str, Any] = {
        "description": f"{what}, or a list of them",
        "type": ["string", "array"],
        "minLength": 1,
        "items": {"description": what, **element},
        "minItems": 1,
        "x-messages": {"type": f"expected {what} or a list of them"},
    }
    if url_only:
        prop["pattern"] = "^https?://[^\\s]+(\\s*,\\s*https?://[^\\s,]+)*$"
        prop["description"] = "http(s) URLs, comma-separated or as a list"
    if item.max_files is not None and item.max_files > 0:
        prop["maxItems"] = item.max_files
        prop["x-messages"]["maxItems"] = f"at most {item.max_files} files are allowed"
    return prop


def property_for(item: InputItem) -> dict[str, Any]:
    """The JSON Schema of one input."""
    if item.kind == "choice":
        return _choice(item)
    if item.kind == "number":
        return _number(item)
    if item.is_file:
        return _files(item, url_only=False)
    return _text(item)


def image_input(items: Sequence[InputItem]) -> str | None:
    """The input ``image:`` fills: the first file input taking images (or not saying)."""
    for kinds in (("file",), ("files", "combine")):
        for item in items:
            if item.kind in kinds and item.accepts in (None, "image"):
                return item.name
    return None


def derive_schema(model: str, items: Sequence[InputItem]) -> dict[str, Any]:
    """The schema of a model's inputs under their API names (plus ``<name>Url`` for file
    inputs and the service-level ``callbackUrl``)."""
    properties: dict[str, Any] = {}
    items = [item for item in items if item.name not in RESERVED]
    names = {item.name for item in items}
    for item in items:
        properties[item.name] = property_for(item)
    for item in items:
        alias = item.url_field
        if item.kind in ("file", "files") and alias not in names:
            prop = _files(item, url_only=True)
            prop["x-file-alias"] = item.name
            properties[alias] = prop
    properties.setdefault("callbackUrl", dict(CALLBACK))
    schema: dict[str, Any] = {
        "$schema": SCHEMA_DIALECT,
        "title": f"{model} inputs",
        "description": f"The inputs of POST /Run/{model}, derived from its tool record.",
        "type": "object",
        # A required input with a default need not be written: the service applies it. (It
        # is not filled in here: then a definition pulled again with another default would
        # change the fingerprints of finished jobs and pay for them again.)
        "required": [item.name for item in items if item.required and not item.default],
        "additionalProperties": False,
        "properties": properties,
    }
    first = image_input(items)
    if first is not None:
        schema["x-image-input"] = first
    return schema
