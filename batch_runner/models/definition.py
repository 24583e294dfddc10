"""A model definition: the service's tool record as fetched, and what batch-runner makes of it.

A definition file (``<owner>/<name>.json``) holds::

    {"format": "batch-runner model definition", "version": 1, "model": "owner/name",
     "source": {"api_base": ..., "fetched_at": ...}, "tool": {...}, "schema": {...}}

``tool`` is the record ``POST /Tool/Detail`` answered; ``schema`` is the JSON Schema the
manifest's inputs are checked against, derived from the record when the file was written. A
project may pin a definition beside its manifests (``models/``) and review or tighten its
schema like a lock file; without a ``schema`` key it is derived again on load.

Records from the service (or from a file someone sent) are hostile input: their shape is
checked with messages naming the part at fault, sizes are capped, unknown item types become
text with a warning. Nothing here does I/O.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import orjson

from .items import DefinitionProblem, InputItem, api_str, parse_item
from .prices import PriceBook, PriceTier, as_number, parse_tiers
from .schema import RESERVED, derive_schema

FORMAT = "batch-runner model definition"
VERSION = 1
#: Largest tool record accepted (its JSON), and its most groups and inputs.
MAX_TOOL_BYTES = 2 * 1024 * 1024
MAX_GROUPS = 100
MAX_ITEMS = 500
#: A model name as a manifest and ``/Run/<owner>/<name>`` write it.
MODEL_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}/[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def model_problem(model: Any) -> str | None:
    """Why ``model`` cannot name a model, or None."""
    if not isinstance(model, str) or not MODEL_PATTERN.fullmatch(model):
        return "a model is written owner/name (letters, digits, '.', '_', '-')"
    if any(part in (".", "..") or part.endswith(".") for part in model.split("/")):
        return "a model is written owner/name (letters, digits, '.', '_', '-')"
    return None


@dataclass(frozen=True)
class ModelDefinition:
    """One model as batch-runner uses it. ``model`` is the name ``/Run`` takes (the
    record's clean slugs); ``origin`` says where it was found (a path, or a description)."""

    model: str
    title: str
    description: str
    categories: tuple[str, ...]
    items: tuple[InputItem, ...]
    tiers: tuple[PriceTier, ...]
    cps: float | None
    typical_cost: float | None
    schema: dict[str, Any] = field(hash=False, compare=False)
    tool: dict[str, Any] = field(hash=False, compare=False, repr=False)
    warnings: tuple[str, ...] = ()
    api_base: str | None = None
    fetched_at: float | None = None
    origin: str = ""

    @cached_property
    def prices(self) -> PriceBook:
        """The model's prices, for estimates."""
        return PriceBook(self.tiers, self.typical_cost, self.items)

    def item(self, name: str) -> InputItem | None:
        for item in self.items:
            if item.name == name:
                return item
        return None

    @property
    def file_items(self) -> tuple[InputItem, ...]:
        return tuple(item for item in self.items if item.is_file)

    def to_file(self) -> dict[str, Any]:
        """The definition file's JSON object."""
        source = {"api_base": self.api_base, "fetched_at": self.fetched_at}
        return {
            "format": FORMAT,
            "version": VERSION,
            "model": self.model,
            "source": source,
            "tool": self.tool,
            "schema": self.schema,
        }

    def digest(self) -> str:
        """sha256 of the tool record (canonical JSON): whether two definitions agree."""
        return hashlib.sha256(orjson.dumps(self.tool, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _str(tool: Mapping[str, Any], name: str, limit: int = 2000) -> str:
    value = tool.get(name)
    return value[:limit] if isinstance(value, str) else ""


def _slug(tool: Mapping[str, Any], clean: str, raw: str) -> str:
    for name in (clean, raw):
        value = tool.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def _items(parameters: Any, warnings: list[str]) -> tuple[InputItem, ...]:
    if parameters is None or parameters == "":
        return ()
    if isinstance(parameters, str):  # some answers carry nested JSON as text
        parameters = _json_text(parameters, "'parameters'")
    if isinstance(parameters, Mapping) and isinstance(parameters.get("items"), list):
        parameters = [parameters]  # one group, not in a list
    if not isinstance(parameters, list):
        raise DefinitionProblem("'parameters' must be a list of groups or null")
    if len(parameters) > MAX_GROUPS:
        raise DefinitionProblem(f"{len(parameters):,} parameter groups (at most {MAX_GROUPS})")
    items: list[InputItem] = []
    for number, group in enumerate(parameters, 1):
        if not isinstance(group, Mapping):
            raise DefinitionProblem(f"parameter group #{number} is not an object")
        title = _str(group, "title", 200) or f"#{number}"
        raw_items = group.get("items")
        if raw_items is None:
            continue
        if not isinstance(raw_items, list):
            raise DefinitionProblem(f"parameter group {title!r}: 'items' is not a list")
        if len(items) + len(raw_items) > MAX_ITEMS:
            raise DefinitionProblem(f"more than {MAX_ITEMS} inputs")
        items.extend(parse_item(raw, title, warnings) for raw in raw_items)
    seen: set[str] = set()
    for item in items:
        if item.name in seen:
            raise DefinitionProblem(f"input {item.name!r} is defined twice")
        seen.add(item.name)
    return tuple(items)


def _json_text(text: str, what: str) -> Any:
    import json

    try:
        return json.loads(text)
    except ValueError:
        raise DefinitionProblem(f"{what} is text that is not JSON") from None


def _money(tool: Mapping[str, Any], name: str) -> float | None:
    value = tool.get(name)
    if isinstance(value, bool):
        return None
    try:
        text = api_str(value)
    except DefinitionProblem:
        return None
    number = as_number(text)
    return number if number is not None and math.isfinite(number) else None


def definition_from_tool(
    tool: Any,
    *,
    requested: str | None = None,
    schema: dict[str, Any] | None = None,
    api_base: str | None = None,
    fetched_at: float | None = None,
    origin: str = "",
) -> ModelDefinition:
    """A definition from a tool record; raises DefinitionProblem when the record cannot
    describe a model. ``schema`` (from a pinned file) is used instead of the derived one."""
    if not isinstance(tool, Mapping):
        raise DefinitionProblem("the tool record is not an object")
    size = len(orjson.dumps(tool, default=str))
    if size > MAX_TOOL_BYTES:
        raise DefinitionProblem(f"the tool record is {size:,} bytes (at most {MAX_TOOL_BYTES:,})")
    owner = _slug(tool, "cleanslugowner", "slugowner")
    project = _slug(tool, "cleanslugproject", "slugproject")
    model = f"{owner}/{project}" if owner and project else (requested or "")
    if model_problem(model) is not None:
        raise DefinitionProblem(f"the record names the model {model[:120]!r}, not owner/name")
    if requested is not None and model.lower() != requested.lower():
        raise DefinitionProblem(f"asked for {requested!r}, the service answered about {model!r}")
    warnings: list[str] = []
    items = _items(tool.get("parameters"), warnings)
    for item in items:
        if item.name in RESERVED:
            warnings.append(
                f"input {item.name!r} has the name of a manifest key of batch-runner's own: "
                "manifests cannot set it (the service uses its default)"
            )
    tiers = parse_tiers(tool.get("dynamicprice"), warnings)
    categories = tool.get("categories")
    cats = tuple(str(c)[:60] for c in categories[:50]) if isinstance(categories, list) else ()
    return ModelDefinition(
        model=model,
        title=_str(tool, "title", 300),
        description=_str(tool, "description"),
        categories=cats,
        items=items,
        tiers=tiers,
        cps=_money(tool, "cps"),
        typical_cost=_money(tool, "approximatelycost"),
        schema=schema if schema is not None else derive_schema(model, items),
        tool=dict(tool),
        warnings=tuple(warnings),
        api_base=api_base,
        fetched_at=fetched_at,
        origin=origin,
    )


def definition_from_file(data: Any, origin: str, *, check_schema: bool = True) -> ModelDefinition:
    """Parse a definition file's JSON object; raises DefinitionProblem. ``check_schema``
    False skips the metaschema check of its ``schema`` (the package's own files, which the
    tests check: jsonschema then loads only if a job needs it)."""
    if not isinstance(data, Mapping) or data.get("format") != FORMAT:
        raise DefinitionProblem(f'not a model definition (no "format": {FORMAT!r})')
    if data.get("version") != VERSION:
        raise DefinitionProblem(f"version {data.get('version')!r}; this batch-runner reads 1")
    source = data.get("source") if isinstance(data.get("source"), Mapping) else {}
    assert isinstance(source, Mapping)
    schema = data.get("schema")
    if schema is not None and not isinstance(schema, dict):
        raise DefinitionProblem("'schema' must be a JSON object")
    if schema is not None and check_schema:
        from jsonschema import Draft202012Validator  # type: ignore[import-untyped, unused-ignore]
        from jsonschema.exceptions import SchemaError  # type: ignore[import-untyped, unused-ignore]

        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            raise DefinitionProblem(f"'schema' is not a valid JSON Schema: {exc.message}") from None
    fetched = source.get("fetched_at")
    definition = definition_from_tool(
        data.get("tool"),
        requested=data.get("model") if isinstance(data.get("model"), str) else None,
        schema=schema,
        api_base=source.get("api_base") if isinstance(source.get("api_base"), str) else None,
        fetched_at=float(fetched) if isinstance(fetched, int | float) else None,
        origin=origin,
    )
    return definition
