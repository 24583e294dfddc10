"""The model input tables the sandbox knows, and input checking the way the service does it.

Only ``PixVerse/image-to-video-v5`` exists here, with the inputs of its API page. Values are
normalised to the API's string form (``5`` -> ``"5"``, ``false`` -> ``"false"``) before they
are checked, because clients send JSON numbers and booleans as often as strings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MAX_SEED = 2147483647
_INTEGER = re.compile(r"^[+-]?\d+$")


class InputError(Exception):
    """An input was rejected; ``message`` is the service's code-0 text."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class InputSpec:
    """One row of a model's input table."""

    name: str
    kind: str  # text | textarea | select | number
    default: str = ""
    required: bool = False
    options: tuple[str, ...] = ()
    max_length: int | None = None


@dataclass(frozen=True)
class ModelSpec:
    """A model the sandbox can run."""

    owner: str
    name: str
    modelid: str
    categories: tuple[str, ...]
    inputs: tuple[InputSpec, ...]

    @property
    def slug(self) -> str:
        return f"{self.owner}/{self.name}"


PIXVERSE_I2V_V5 = ModelSpec(
    owner="PixVerse",
    name="image-to-video-v5",
    modelid="1421",
    categories=("tool", "image-to-video", "partner", "PixVerse", "compare-landscape"),
    inputs=(
        InputSpec("inputImageUrl", "text", required=True),
        InputSpec("prompt", "textarea", required=True, max_length=2048),
        InputSpec("negativePrompt", "textarea", max_length=2048),
        InputSpec("duration", "select", default="5", options=("5", "8")),
        InputSpec("quality", "select", default="540p", options=("360p", "540p", "720p", "1080p")),
        InputSpec(
            "style",
            "select",
            default="",
            options=("", "anime", "3d_animation", "clay", "comic", "cyberpunk"),
        ),
        InputSpec("seed", "number", default="0"),
        InputSpec("Watermark", "select", default="false", options=("false", "true")),
        InputSpec("callbackUrl", "text"),
    ),
)

MODELS: dict[str, ModelSpec] = {PIXVERSE_I2V_V5.slug: PIXVERSE_I2V_V5}


def find_model(owner: str, name: str) -> ModelSpec | None:
    return MODELS.get(f"{owner}/{name}")


def to_api_str(value: Any) -> str:
    """The string the service would store for a JSON or form value."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list | dict):
        import json

        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _check(spec: InputSpec, value: str) -> str:
    if spec.kind == "select" and value not in spec.options:
        allowed = ", ".join(repr(o) for o in spec.options)
        raise InputError(f"Request parameter [{spec.name}] must be one of {allowed}.")
    if spec.kind == "number" and value != "":
        text = value.strip()
        if not _INTEGER.match(text) or not 0 <= int(text) <= MAX_SEED:
            raise InputError(
                f"Request parameter [{spec.name}] must be an integer from 0 to {MAX_SEED}."
            )
        return str(int(text))
    if spec.max_length is not None and len(value) > spec.max_length:
        raise InputError(
            f"Request parameter [{spec.name}] must be at most {spec.max_length} characters."
        )
    return value


def resolve_inputs(model: ModelSpec, raw: Mapping[str, Any]) -> dict[str, str]:
    """Check ``raw`` against the model's table; return every input with defaults applied.

    Unknown fields are ignored (the service does the same). An empty ``seed`` is kept empty:
    the service randomises it.
    """
    resolved: dict[str, str] = {}
    for spec in model.inputs:
        present = spec.name in raw and raw[spec.name] is not None
        value = to_api_str(raw[spec.name]) if present else None
        if spec.required and (value is None or not value.strip()):
            raise InputError(f"Request parameter [{spec.name}] required")
        if value is None:
            value = spec.default
        resolved[spec.name] = _check(spec, value)
    return resolved
