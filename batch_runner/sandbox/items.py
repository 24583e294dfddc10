"""One input of a tool record ("item"), read in either of the service's two spellings.

Wiro's SDKs and MCP server write ``default``/``min``/``max``/``step`` and options
``{label, value}``; its docs sample and Go CLI write ``defaultvalue``/``minvalue``/
``maxvalue``/``incrementby`` and options ``{text, value}``. The catalogue uses both on
purpose, so the sandbox reads both, and clients coding against it must too. Values may be
strings or JSON numbers; everything is normalised to the API's string form here, once, when
the catalogue loads.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Item types whose value is a file (or files), sent as an upload or as URL(s).
FILE_TYPES = frozenset({"fileinput", "multifileinput", "combinefileinput"})
#: Item types whose value must be one of the item's options.
CHOICE_TYPES = frozenset({"select", "selectwithcover", "checkbox"})
#: Item types whose value is a number.
NUMBER_TYPES = frozenset({"number", "numeric", "integer", "float", "range"})
#: What a checkbox accepts when its item lists no options (the service's boolean strings).
CHECKBOX_VALUES = ("false", "true")


def api_str(value: Any) -> str:
    """A catalogue value (string, JSON number or boolean) in the API's string form."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _first(item: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        if item.get(name) is not None:
            return item[name]
    return None


def _number(item: Mapping[str, Any], *names: str) -> float | None:
    raw = _first(item, *names)
    if raw is None or api_str(raw).strip() == "":
        return None
    value = float(api_str(raw))
    if not math.isfinite(value):
        raise ValueError(f"item {item.get('id')!r}: {names[0]} is not a finite number")
    return value


def _count(item: Mapping[str, Any], *names: str) -> int | None:
    value = _number(item, *names)
    return None if value is None else int(value)


def _flag(raw: Any) -> bool:
    return raw is True or api_str(raw).strip().lower() in ("true", "1")


@dataclass(frozen=True)
class InputSpec:
    """What the sandbox checks for one input. ``kind`` is the item's ``type`` as written
    (the list is open: an unknown type is checked as text)."""

    name: str
    kind: str
    default: str = ""
    required: bool = False
    options: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    max_length: int | None = None
    max_files: int | None = None

    @property
    def is_file(self) -> bool:
        return self.kind in FILE_TYPES

    @property
    def is_number(self) -> bool:
        return self.kind in NUMBER_TYPES

    @property
    def integer_only(self) -> bool:
        """``integer``, or a non-``float`` numeric item whose step is a whole number."""
        if self.kind == "integer":
            return True
        if self.kind == "float" or self.step is None:
            return False
        return float(self.step).is_integer()

    @property
    def choices(self) -> tuple[str, ...]:
        """Accepted values of a choice item. An empty value is accepted when the default
        is empty (PixVerse's ``style``: "You can leave style empty")."""
        options = self.options or (CHECKBOX_VALUES if self.kind == "checkbox" else ())
        if self.default == "" and "" not in options:
            return ("", *options)
        return options


def spec_from_item(item: Mapping[str, Any]) -> InputSpec:
    """Read one item; raises ValueError (naming the item) on a malformed one."""
    name = item.get("id")
    kind = item.get("type")
    if not isinstance(name, str) or not name or not isinstance(kind, str) or not kind:
        raise ValueError(f"item without an id and a type: {dict(item)!r}")
    options: list[str] = []
    for option in item.get("options") or ():
        if not isinstance(option, Mapping) or "value" not in option:
            raise ValueError(f"item {name!r}: an option without a value: {option!r}")
        options.append(api_str(option["value"]))
    return InputSpec(
        name=name,
        kind=kind,
        default=api_str(_first(item, "default", "defaultvalue")),
        required=_flag(item.get("required")),
        options=tuple(options),
        minimum=_number(item, "min", "minvalue"),
        maximum=_number(item, "max", "maxvalue"),
        step=_number(item, "step", "incrementby"),
        # The service's key for a text cap is not known; "maxlength" is the sandbox's.
        max_length=_count(item, "maxlength"),
        # "maxinputlenght" (sic) caps the number of files, as Wiro's Go CLI reads it.
        max_files=_count(item, "maxinputlenght", "maxinputlength"),
    )


def specs_of(parameters: Any) -> tuple[InputSpec, ...]:
    """Every item of a record's ``parameters`` (a list of groups, or null), in order."""
    if parameters is None:
        return ()
    if not isinstance(parameters, list):
        raise ValueError("parameters must be a list of groups or null")
    specs: list[InputSpec] = []
    for group in parameters:
        if not isinstance(group, Mapping) or not isinstance(group.get("items"), list):
            raise ValueError(f"a parameter group without items: {group!r}")
        specs.extend(spec_from_item(item) for item in group["items"])
    names = [s.name for s in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"items defined twice: {', '.join(duplicates)}")
    return tuple(specs)
