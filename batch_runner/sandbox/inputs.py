"""Input checking at ``/Run``, the way the service plausibly does it, from each tool record.

Values are normalised to the API's string form (``5`` -> ``"5"``, ``false`` -> ``"false"``)
before they are checked, because clients send JSON numbers and booleans as often as
strings. Then, item by item in the record's order (the first problem is the answer):
a required input must not be empty (one left out takes its default, so only a required
input without a default must be sent); a choice must be one of the options; a number must
parse, be whole when the item's step is, and lie within min..max; text must fit its
``maxlength``. An input left out takes its default; one sent empty stays empty (the service
passes it on, and PixVerse randomises an empty ``seed``). Unknown fields are ignored, and
every model also takes the service-level ``callbackUrl``. Messages follow the service's
``Request parameter [X] ...`` style; Wiro's error reference documents ``Request parameter
[X] required`` and ``Request files [X] required`` word for word, the rest is the sandbox's.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .bodies import Body
from .fileinputs import FileInputError, Source, StoreFile, resolve_file
from .items import InputSpec
from .models import ModelSpec

_INTEGER = re.compile(r"^[+-]?\d+$")
_DECIMAL = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
#: Inputs every model takes, after its own (Wiro: "All models support ... callbackUrl").
SERVICE_INPUTS = (InputSpec("callbackUrl", "text"),)


class InputError(Exception):
    """An input was rejected; ``message`` is the service's code-0 text."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class Resolved:
    """Every input with defaults applied, plus where each file came from."""

    parameters: dict[str, str]
    file_sources: dict[str, list[Source]] = field(default_factory=dict)

    @property
    def file_counts(self) -> dict[str, int]:
        return {name: len(sources) for name, sources in self.file_sources.items()}


def to_api_str(value: Any) -> str:
    """The string the service would store for a JSON or form value."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _fmt(number: float) -> str:
    return str(int(number)) if number.is_integer() else repr(number)


def _range_text(spec: InputSpec) -> str:
    low, high = spec.minimum, spec.maximum
    if low is not None and high is not None:
        return f" from {_fmt(low)} to {_fmt(high)}"
    if low is not None:
        return f" of at least {_fmt(low)}"
    if high is not None:
        return f" of at most {_fmt(high)}"
    return ""


def _check_number(spec: InputSpec, value: str) -> str:
    text = value.strip()
    whole = spec.integer_only
    number: float | None = None
    if (_INTEGER if whole else _DECIMAL).match(text):
        number = float(int(text)) if whole else float(text)
    in_range = (
        number is not None
        and math.isfinite(number)
        and (spec.minimum is None or number >= spec.minimum)
        and (spec.maximum is None or number <= spec.maximum)
    )
    if not in_range:
        what = "an integer" if whole else "a number"
        raise InputError(f"Request parameter [{spec.name}] must be {what}{_range_text(spec)}.")
    return str(int(text)) if whole else text


def check_value(spec: InputSpec, value: str) -> str:
    """The stored form of a present, non-file value; raises InputError."""
    if spec.kind in ("select", "selectwithcover", "checkbox"):
        if value not in spec.choices:
            allowed = ", ".join(repr(o) for o in spec.choices)
            raise InputError(f"Request parameter [{spec.name}] must be one of {allowed}.")
        return value
    if spec.is_number:
        return value if value == "" else _check_number(spec, value)
    if spec.max_length is not None and len(value) > spec.max_length:
        raise InputError(
            f"Request parameter [{spec.name}] must be at most {spec.max_length} characters."
        )
    return value


def resolve_scalar(spec: InputSpec, raw: Mapping[str, Any]) -> str:
    present = spec.name in raw and raw[spec.name] is not None
    value = to_api_str(raw[spec.name]) if present else spec.default
    if spec.required and not value.strip():
        raise InputError(f"Request parameter [{spec.name}] required")
    return check_value(spec, value) if present else value


def resolve(model: ModelSpec, body: Body, store: StoreFile) -> Resolved:
    """Check a ``/Run`` body against the model's record; raises InputError."""
    resolved = Resolved({})
    for spec in (*model.inputs, *SERVICE_INPUTS):
        if spec.is_file:
            try:
                value, sources = resolve_file(spec, body, store)
            except FileInputError as exc:
                raise InputError(exc.message) from None
            if sources:
                resolved.file_sources[spec.name] = sources
            resolved.parameters[spec.name] = value
        else:
            resolved.parameters[spec.name] = resolve_scalar(spec, body.fields)
    return resolved
