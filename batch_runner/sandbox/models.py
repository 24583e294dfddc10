"""The models the sandbox serves, loaded from the tool records in ``catalogue/``.

Each ``catalogue/*.json`` is one tool record as ``/Tool/Detail`` answers it, plus a
``sandbox`` key (stripped before serving) that says what the model "generates": the output
type, which input gives the number of outputs or the picture's shape, and which input is the
video length for per-second prices. Input checking (:mod:`.inputs`) and prices
(:mod:`.pricing`) are derived from the record itself, so the data is the one definition.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .items import InputSpec, api_str, specs_of
from .pricing import Pricing, parse_tiers

CATALOGUE_DIR = Path(__file__).resolve().parent / "catalogue"
DEFAULT_SLUG = "PixVerse/image-to-video-v5"
#: Output file extension by content type.
EXTENSIONS = {"video/mp4": "mp4", "image/png": "png", "audio/wav": "wav"}
#: Longest side, in pixels, of the pictures the sandbox draws (kept small: they are served
#: many times, and no client checks the pixel size against the asked width).
PICTURE_SIDE = 96


@dataclass(frozen=True)
class OutputSpec:
    """What a task of the model produces when it succeeds."""

    contenttype: str
    count_input: str | None = None
    width_input: str | None = None
    height_input: str | None = None
    aspect_input: str | None = None

    def count(self, parameters: Mapping[str, str]) -> int:
        if self.count_input is None:
            return 1
        text = parameters.get(self.count_input, "")
        return int(text) if text.isdigit() and int(text) > 0 else 1

    def names(self, parameters: Mapping[str, str]) -> list[str]:
        extension = EXTENSIONS[self.contenttype]
        return [f"{i}.{extension}" for i in range(self.count(parameters))]

    def shape(self, parameters: Mapping[str, str]) -> tuple[int, int]:
        """(width, height) of a picture: the asked size's proportions, at most
        PICTURE_SIDE on the long side."""
        width, height = 1, 1
        if self.width_input and self.height_input:
            width = _positive(parameters.get(self.width_input, ""), 1024)
            height = _positive(parameters.get(self.height_input, ""), 1024)
        elif self.aspect_input:
            left, _, right = parameters.get(self.aspect_input, "").partition(":")
            width, height = _positive(left, 1), _positive(right, 1)
        scale = PICTURE_SIDE / max(width, height)
        return max(1, round(width * scale)), max(1, round(height * scale))


def _positive(text: str, fallback: int) -> int:
    return int(text) if text.isdigit() and int(text) > 0 else fallback


@dataclass(frozen=True)
class ModelSpec:
    """A model the sandbox can run, with the record ``/Tool/Detail`` serves for it."""

    owner: str
    name: str
    modelid: str
    categories: tuple[str, ...]
    inputs: tuple[InputSpec, ...]
    pricing: Pricing
    output: OutputSpec
    record: Mapping[str, Any]

    @property
    def slug(self) -> str:
        """``owner/project`` as ``/Run/...`` takes it (the clean slugs)."""
        return f"{self.owner}/{self.name}"

    def names_tool(self, slugowner: str, slugproject: str) -> bool:
        """Whether ``/Tool/Detail`` with these slugs means this model: the clean or the raw
        slugs, case-insensitively (the service's database collation)."""
        owner, project = slugowner.strip().lower(), slugproject.strip().lower()
        owners = {api_str(self.record.get(k)).lower() for k in ("slugowner", "cleanslugowner")}
        projects = {
            api_str(self.record.get(k)).lower() for k in ("slugproject", "cleanslugproject")
        }
        return owner in owners and project in projects


def model_from_record(data: Mapping[str, Any]) -> ModelSpec:
    """Build a model from a catalogue file's content; ValueError when it is malformed."""
    record = {k: v for k, v in data.items() if k != "sandbox"}
    extra = data.get("sandbox") or {}
    output = dict(extra.get("output") or {})
    contenttype = output.get("contenttype", "video/mp4")
    if contenttype not in EXTENSIONS:
        raise ValueError(f"{record.get('title')!r}: unknown output type {contenttype!r}")
    inputs = specs_of(record.get("parameters"))
    pricing = Pricing(
        tiers=parse_tiers(record.get("dynamicprice")),
        cps=float(api_str(record.get("cps")) or 0),
        approximate=float(api_str(record.get("approximatelycost")) or 0),
        seconds_input=extra.get("seconds"),
    )
    return ModelSpec(
        owner=str(record["cleanslugowner"]),
        name=str(record["cleanslugproject"]),
        modelid=api_str(record["id"]),
        categories=tuple(str(c) for c in record.get("categories") or ()),
        inputs=inputs,
        pricing=pricing,
        output=OutputSpec(
            contenttype=contenttype,
            count_input=output.get("count"),
            width_input=output.get("width"),
            height_input=output.get("height"),
            aspect_input=output.get("aspect"),
        ),
        record=record,
    )


def load_catalogue(directory: Path = CATALOGUE_DIR) -> dict[str, ModelSpec]:
    """Every model in ``directory``, by slug, the default model first."""
    models: dict[str, ModelSpec] = {}
    for path in sorted(directory.glob("*.json")):
        try:
            model = model_from_record(json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"catalogue file {path.name}: {exc}") from exc
        models[model.slug] = model
    if DEFAULT_SLUG not in models:
        raise ValueError(f"the catalogue has no {DEFAULT_SLUG}")
    return {DEFAULT_SLUG: models.pop(DEFAULT_SLUG), **models}


MODELS: dict[str, ModelSpec] = load_catalogue()
_BY_LOWER_SLUG = {slug.lower(): model for slug, model in MODELS.items()}
DEFAULT_MODEL = MODELS[DEFAULT_SLUG]

#: PixVerse's price list, USD per (quality, duration), read from its record's tiers.
PRICES_USD: dict[tuple[str, str], float] = {
    (dict(t.inputs)["quality"], dict(t.inputs)["duration"]): t.price
    for t in DEFAULT_MODEL.pricing.tiers
}


def find_model(owner: str, name: str) -> ModelSpec | None:
    """The model ``/Run/{owner}/{name}`` names (clean slugs, case-insensitive)."""
    return _BY_LOWER_SLUG.get(f"{owner}/{name}".lower())
