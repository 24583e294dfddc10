"""A JSON Schema of manifests for one model, for editors (pure).

``schemas/manifest.schema.json`` checks a manifest's structure for any model: a job there is
any mapping, since each model's inputs are checked against the model's own definition. An
editor given only that schema can complete ``model:`` and ``jobs:`` but not a single input.
:func:`editor_schema` writes one for a given model: the manifest schema, with ``defaults``,
each job, the model's block under ``models:`` and the ``matrix`` axes spelled out with that
model's inputs (their types, allowed values, limits, defaults, and the same descriptions the
starter's comments give), so an editor completes input names and values and flags an
unknown input or a value out of range while typing.

What it cannot say, it leaves to ``batch-runner validate``: required inputs (they may come
from ``defaults``, a per-model block or ``image:``), local files, ids, the matrix size.
A manifest that turns to other models (its own ``model:``, a ``model`` axis, a job's own
``model:``) is checked by the generic rules only, where those other models are in play.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from ..models.definition import ModelDefinition
from ..models.schema import RESERVED, derive_schema
from .describe import notes
from .samples import native
from .spec import spec_for

#: Keywords whose value is a map of names to schemas (names are kept as they are).
_NAMED = ("properties", "patternProperties", "$defs", "dependentSchemas")
#: Keywords whose value is one schema, and those whose value is a list of schemas.
_ONE = ("items", "additionalProperties", "not", "if", "then", "else", "propertyNames",
        "contains", "unevaluatedProperties", "unevaluatedItems")  # fmt: skip
_MANY = ("allOf", "anyOf", "oneOf", "prefixItems")


def strip_annotations(schema: Any) -> Any:
    """``schema`` without batch-runner's own ``x-`` keywords (messages, hints), which mean
    nothing to an editor; property names starting with ``x-`` are kept."""
    if not isinstance(schema, Mapping):
        return copy.deepcopy(schema)
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key.startswith("x-"):
            continue
        if key in _NAMED and isinstance(value, Mapping):
            out[key] = {name: strip_annotations(sub) for name, sub in value.items()}
        elif key in _ONE:
            out[key] = strip_annotations(value)
        elif key in _MANY and isinstance(value, list):
            out[key] = [strip_annotations(sub) for sub in value]
        else:
            out[key] = copy.deepcopy(value)
    return out


def input_properties(definition: ModelDefinition) -> dict[str, Any]:
    """The model's inputs as editor schema properties: the definition's own schema of each,
    described as the starter's comments describe it, with the model's default."""
    spec = spec_for(definition)
    items = {item.name: item for item in definition.items if item.name not in RESERVED}
    derived = derive_schema(definition.model, definition.items)["properties"]
    found: dict[str, Any] = {}
    for name, prop in definition.schema.get("properties", {}).items():
        if not isinstance(prop, Mapping):
            continue
        out = strip_annotations(prop)
        item = items.get(name)
        owner = spec.files[name].name if name in spec.files else name
        if item is not None:
            out["description"] = notes(spec, item, prop, derived.get(name, {}))
            if item.default not in (None, "") and "default" not in prop:
                value = native(spec, name, item.default)
                if value is not None:
                    out["default"] = value
        elif owner != name and owner in items:
            words = prop.get("description", "http(s) URLs")
            out["description"] = f"{owner} written as URLs only: {words}."
        found[name] = out
    return found


def _other_model(model: str) -> dict[str, Any]:
    """Matches a mapping whose ``model`` is set to another model than ``model``."""
    return {"required": ["model"], "properties": {"model": {"not": {"const": model}}}}


def editor_schema(definition: ModelDefinition, generic: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest schema ``generic`` (``schemas/manifest.schema.json``) made specific to
    ``definition``'s model (pure)."""
    model = definition.model
    spec = spec_for(definition)
    inputs = input_properties(definition)
    schema: dict[str, Any] = strip_annotations(generic)
    schema.pop("$id", None)  # not the published schema: a file of the project's own
    defs = schema["$defs"]
    generic_job = defs["job"]["properties"]
    shared: dict[str, Any] = {}
    if spec.image_input is not None:
        image = dict(generic_job["image"])
        image["description"] = (
            f"a local file (relative to the manifest) to upload into {spec.image_input}, the "
            "model's image input"
        )
        shared["image"] = image
    defs["inputs"] = {
        "description": f"inputs of {model}, under their API names",
        "type": "object",
        "properties": {**shared, **inputs},
        "additionalProperties": False,
    }
    defs["model_job"] = {
        "description": f"one job on {model}: its inputs, plus optional 'id' (and 'model', "
        "'models')",
        "type": "object",
        "properties": {
            "id": generic_job["id"],
            "model": {"$ref": "#/$defs/model"},
            "models": {"$ref": "#/$defs/model_blocks"},
            **shared,
            **inputs,
        },
        "additionalProperties": False,
    }
    defs["model_defaults"] = {
        "description": f"inputs of {model} merged under every job (a job's own values win)",
        "type": "object",
        "properties": {"model": {"$ref": "#/$defs/model"}, **shared, **inputs},
        "additionalProperties": False,
    }
    props = schema["properties"]
    props["model"] = {
        **props["model"],
        "description": f"the Wiro model of every job that names none; this schema spells out "
        f"the inputs of {model} (for another model, write its manifest with `batch-runner "
        "init --model OWNER/MODEL`)",
        "default": model,
        "examples": [model],
    }
    blocks = copy.deepcopy(defs["model_blocks"])
    blocks["properties"] = {model: {"$ref": "#/$defs/inputs"}}
    axes = {
        name: {"type": "array", "minItems": 1, "items": prop}
        for name, prop in inputs.items()
        if name not in spec.files  # a matrix over files takes URLs only: left generic
    }
    axes["model"] = {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/model"}}
    specific = {
        "defaults": {"$ref": "#/$defs/model_defaults"},
        "jobs": {
            "items": {
                "if": _other_model(model),
                "then": {"$ref": "#/$defs/job"},
                "else": {"$ref": "#/$defs/model_job"},
            }
        },
        "models": blocks,
        "matrix": {"properties": axes},
    }
    other_root = {
        "anyOf": [
            _other_model(model),
            {"required": ["defaults"], "properties": {"defaults": _other_model(model)}},
            {"required": ["matrix"], "properties": {"matrix": {"required": ["model"]}}},
        ]
    }
    # The model's inputs apply unless the manifest runs other models (its own model, in
    # defaults or as a matrix axis): then only the generic rules do.
    schema["allOf"] = [
        *schema.get("allOf", []),
        {"if": other_root, "else": {"properties": specific}},
    ]
    schema["title"] = f"batch-runner manifest for {model}"
    schema["description"] = (
        f"A batch of jobs for {model} ({definition.title or model}), written by `batch-runner "
        "init` from the model's definition for editors (completion, hover, checks as you "
        "type). `batch-runner validate` is the full check: required inputs, local files, "
        "ids, prices."
    )
    schema["$comment"] = (
        f"Generated from the definition of {model} (tool record sha256 "
        f"{definition.digest()[:16]}); regenerate it after `batch-runner models pull` with "
        "`batch-runner init --model ... --force`. Structure as schemas/manifest.schema.json."
    )
    return schema
