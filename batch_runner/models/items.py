"""One input of a tool record (an "item"), read in either of the service's two spellings.

Wiro's SDKs and MCP server write ``default``/``min``/``max``/``step`` and options
``{label, value}``; its docs sample and Go CLI write ``defaultvalue``/``minvalue``/
``maxvalue``/``incrementby`` and options ``{text, value}``. Both are read. Values may come as
strings, JSON numbers, booleans or null; everything is normalised to the API's string form.

The record comes from the network and is treated as hostile: a malformed item raises
:class:`DefinitionProblem` naming it, sizes are capped, and an item type this module does not
know is kept as text with a warning (the list of types is open), never a crash.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Item types whose value is text.
TEXT_TYPES = frozenset({"text", "textarea"})
#: Item types whose value is one of the item's options.
CHOICE_TYPES = frozenset({"select", "selectwithcover", "checkbox"})
#: Item types whose value is a number.
NUMBER_TYPES = frozenset({"number", "numeric", "integer", "float", "range"})
#: Item types whose value is a file (or files): ``kind`` ``file``, ``files``, ``combine``.
FILE_TYPES = {"fileinput": "file", "multifileinput": "files", "combinefileinput": "combine"}
#: What a checkbox takes when its item lists no options.
CHECKBOX_VALUES = ("false", "true")

#: An input name: it becomes a form field and a manifest key, so keep it plain.
NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,99}$")
MAX_OPTIONS = 1000
MAX_TEXT = 2000  # characters kept of a label, description or placeholder
MAX_VALUE = 4096  # characters of a default or an option value


class DefinitionProblem(ValueError):
    """A tool record that cannot be used; the message says which part and why."""


@dataclass(frozen=True, slots=True)
class Option:
    """One allowed value of a choice, with the label the service shows for it."""

    value: str
    label: str = ""


@dataclass(frozen=True, slots=True)
class InputItem:
    """One model input as batch-runner understands it.

    ``type`` is the item's type as written (lower case); ``kind`` is what batch-runner does
    with it: ``text``, ``choice``, ``number``, ``file`` (one file: an upload or a URL in
    ``<name>Url``), ``files`` (several: comma-separated URLs in ``<name>Url``) or ``combine``
    (several: a list of URLs in ``<name>`` itself). An unknown type is ``text`` with
    ``known`` False.
    """

    name: str
    type: str
    kind: str
    label: str = ""
    description: str = ""
    required: bool = False
    default: str | None = None
    options: tuple[Option, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    max_length: int | None = None
    max_files: int | None = None
    group: str = ""
    advanced: bool = False
    known: bool = True

    @property
    def is_file(self) -> bool:
        return self.kind in ("file", "files", "combine")

    @property
    def integer(self) -> bool:
        """Whole numbers only: an ``integer`` item, or a non-``float`` number item whose step
        is whole."""
        if self.kind != "number":
            return False
        if self.type == "integer":
            return True
        if self.type == "float" or self.step is None:
            return False
        return float(self.step).is_integer()

    @property
    def url_field(self) -> str:
        """Where this file input's URLs are sent: ``<name>Url``, or ``<name>`` itself for a
        ``combinefileinput``."""
        return self.name if self.kind == "combine" else f"{self.name}Url"

    @property
    def choices(self) -> tuple[str, ...]:
        """Accepted values of a choice. An empty value is accepted when the default is
        empty (PixVerse's ``style``: "You can leave style empty")."""
        values = tuple(o.value for o in self.options) or (
            CHECKBOX_VALUES if self.type == "checkbox" else ()
        )
        if self.default == "" and "" not in values:
            return ("", *values)
        return values

    @property
    def accepts(self) -> str | None:
        """The kind of file a file input expects (``image``, ``video``, ``audio``), as far
        as its name and label tell; None when they do not say."""
        if not self.is_file:
            return None
        words = f"{self.name} {self.label}".lower()
        for kind, hints in _ACCEPT_HINTS:
            if any(hint in words for hint in hints):
                return kind
        return None


_ACCEPT_HINTS = (
    ("video", ("video", "clip", "movie")),
    ("audio", ("audio", "voice", "sound", "music", "speech", "song")),
    ("image", ("image", "frame", "photo", "picture", "img", "mask", "face")),
)


def api_str(value: Any) -> str:
    """A record value (string, JSON number, boolean, null) in the API's string form."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if not math.isfinite(value):
            return ""
        return str(int(value)) if value.is_integer() and abs(value) < 1e16 else repr(value)
    if isinstance(value, int | str):
        return str(value)
    raise DefinitionProblem(f"expected a string or a number, got {type(value).__name__}")


def _text(value: Any, limit: int = MAX_TEXT) -> str:
    """Free text (a label, a description): a string, cut to ``limit``; anything else ""."""
    if isinstance(value, str):
        return value[:limit]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return api_str(value)
    return ""


def _first(item: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        if item.get(name) is not None:
            return item[name]
    return None


def _number(item: Mapping[str, Any], warnings: list[str], *names: str) -> float | None:
    raw = _first(item, *names)
    if raw is None or isinstance(raw, bool):
        return None
    text = raw.strip() if isinstance(raw, str) else raw
    if text == "":
        return None
    try:
        value = float(text)
    except (TypeError, ValueError):
        warnings.append(f"input {item.get('id')!r}: {names[0]} {str(raw)[:40]!r} is not a number")
        return None
    if not math.isfinite(value):
        warnings.append(f"input {item.get('id')!r}: {names[0]} is not a finite number")
        return None
    return value


def _count(item: Mapping[str, Any], warnings: list[str], *names: str) -> int | None:
    value = _number(item, warnings, *names)
    return None if value is None or value < 0 else int(value)


def _flag(raw: Any) -> bool:
    if raw is True:
        return True
    return isinstance(raw, str | int) and str(raw).strip().lower() in ("true", "1", "yes")


def _options(name: str, raw: Any, warnings: list[str]) -> tuple[Option, ...]:
    if raw is None or raw == "":
        return ()
    if isinstance(raw, str) and raw.strip().startswith("["):
        import contextlib
        import json

        with contextlib.suppress(ValueError):
            raw = json.loads(raw)
    if not isinstance(raw, list):
        raise DefinitionProblem(f"input {name!r}: options must be a list")
    if len(raw) > MAX_OPTIONS:
        raise DefinitionProblem(f"input {name!r}: {len(raw):,} options (at most {MAX_OPTIONS})")
    options: list[Option] = []
    seen: set[str] = set()
    for number, option in enumerate(raw, 1):
        if not isinstance(option, Mapping) or "value" not in option:
            warnings.append(f"input {name!r}: option #{number} has no value; it is ignored")
            continue
        try:
            value = api_str(option["value"])
        except DefinitionProblem:
            warnings.append(f"input {name!r}: option #{number}'s value is not text; ignored")
            continue
        if len(value) > MAX_VALUE or value in seen:
            continue
        seen.add(value)
        options.append(Option(value, _text(_first(option, "label", "text"), 200)))
    return tuple(options)


def parse_item(raw: Any, group: str, warnings: list[str]) -> InputItem:
    """One item of a record's ``parameters``; raises DefinitionProblem naming it."""
    if not isinstance(raw, Mapping):
        raise DefinitionProblem(f"an input of group {group!r} is not an object")
    name = raw.get("id")
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        shown = repr(name)[:60]
        raise DefinitionProblem(
            f"an input of group {group!r} has the id {shown}: an input name must be 1 to 100 "
            "letters, digits, '_', '.' or '-', starting with a letter or '_'"
        )
    written = raw.get("type")
    item_type = written.strip().lower() if isinstance(written, str) else ""
    known = True
    if item_type in TEXT_TYPES:
        kind = "text"
    elif item_type in CHOICE_TYPES:
        kind = "choice"
    elif item_type in NUMBER_TYPES:
        kind = "number"
    elif item_type in FILE_TYPES:
        kind = FILE_TYPES[item_type]
    else:
        kind, known = "text", False
        what = f"type {str(written)[:40]!r}" if item_type else "no type"
        warnings.append(
            f"input {name!r} has {what}, which batch-runner does not know: its value is "
            "passed through as text"
        )
    try:
        default_raw = _first(raw, "default", "defaultvalue")
        default = None if default_raw is None else api_str(default_raw)[:MAX_VALUE]
    except DefinitionProblem:
        warnings.append(f"input {name!r}: its default is not text; ignored")
        default = None
    return InputItem(
        name=name,
        type=item_type or "text",
        kind=kind,
        label=_text(raw.get("label"), 200),
        description=_text(_first(raw, "description", "note")),
        required=_flag(raw.get("required")),
        default=default,
        options=_options(name, raw.get("options"), warnings),
        minimum=_number(raw, warnings, "min", "minvalue"),
        maximum=_number(raw, warnings, "max", "maxvalue"),
        step=_number(raw, warnings, "step", "incrementby"),
        max_length=_count(raw, warnings, "maxlength", "maxLength", "maxlenght"),
        max_files=_count(raw, warnings, "maxinputlenght", "maxinputlength", "maxfiles"),
        group=group,
        advanced=_flag(raw.get("advanced")),
        known=known,
    )
