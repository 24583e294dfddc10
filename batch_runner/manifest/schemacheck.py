"""JSON Schema plumbing for manifests: compiled validators, a fast path, readable messages.

The schemas under ``schemas/`` are the single source of truth; this module only makes them
cheap to apply 100,000 times and turns jsonschema's errors into messages a person can act on.

Why a fast path: jsonschema needs about 55 µs to validate one job, 5.5 s for 100,000. A
schema made of the simple keywords used here (type, enum, const, lengths, pattern, bounds,
properties, required, additionalProperties, local ``$ref``) is compiled once into plain
predicates that answer "certainly valid" in a few µs. The predicates are conservative: when
they cannot say yes, jsonschema itself runs and produces the errors, so a fast "valid" never
hides an error and every message still comes from jsonschema.

Integers: JSON Schema calls ``5.0`` an integer; YAML users writing ``duration: 5.0`` or
``seed: 1.5e3`` made a mistake, so here only real (non-bool) ints are integers.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ManifestError

if TYPE_CHECKING:  # jsonschema ships no type hints; types-jsonschema is not a dependency
    from jsonschema import ValidationError  # type: ignore[import-untyped, unused-ignore]

Predicate = Callable[[Any], bool]


def _is_strict_integer(_checker: Any, instance: Any) -> bool:
    return isinstance(instance, int) and not isinstance(instance, bool)


@lru_cache(maxsize=1)
def strict_validator() -> Any:
    """Draft 2020-12 with ``true`` not an integer. jsonschema (and what it imports, 50 ms)
    loads on first use: a manifest whose values all pass :func:`compile_fast`'s checks
    never needs it."""
    from jsonschema import Draft202012Validator, validators

    checker = Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_strict_integer)
    return validators.extend(Draft202012Validator, type_checker=checker)


_META_KEYWORDS = frozenset(
    {
        "$schema",
        "$id",
        "$comment",
        "$defs",
        "title",
        "description",
        "default",
        "examples",
        "deprecated",
        "readOnly",
        "writeOnly",
        "format",  # annotation only: Draft 2020-12 does not assert formats by default
    }
)
_OBJECT_KEYWORDS = frozenset(
    {"properties", "patternProperties", "additionalProperties", "required"}
)

_PY_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
    "object": (dict,),
    "array": (list,),
}


@lru_cache(maxsize=64)
def load_schema(path: Path) -> dict[str, Any]:
    """Read a schema file of the package once per process (the tests check each against
    the metaschema, so a start need not); an unreadable file is a clear error."""
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ManifestError(f"cannot read schema {path}: {exc}") from exc
    if not isinstance(schema, dict):
        raise ManifestError(f"schema {path} must be a JSON object")
    return schema


class Checker:
    """A schema compiled once: :meth:`errors` returns ``[]`` quickly for valid instances."""

    def __init__(self, schema: Mapping[str, Any], root: Mapping[str, Any] | None = None) -> None:
        self.schema = schema
        #: the schema ``$ref`` resolves against
        self.root: Mapping[str, Any] = root or schema
        self.fast: Predicate | None = compile_fast(schema, self.root)
        self._validator: Any = None

    @property
    def validator(self) -> Any:
        """jsonschema's validator of the schema, made when first needed."""
        if self._validator is None:
            self._validator = strict_validator()(self.schema)
        return self._validator

    def errors(self, instance: Any) -> list[ValidationError]:
        """Every error jsonschema finds, skipping the work when the fast path says valid."""
        fast = self.fast
        if fast is not None and fast(instance):
            return []
        return list(self.validator.iter_errors(instance))


# -- the fast path ---------------------------------------------------------------------------


def compile_fast(schema: Any, root: Mapping[str, Any], depth: int = 0) -> Predicate | None:
    """A predicate that returns True only for instances the schema certainly accepts.

    Returns None when the schema uses a keyword the fast path does not model; the caller
    then always runs jsonschema.
    """
    if schema is True:
        return lambda _value: True
    if schema is False:
        return lambda _value: False
    if not isinstance(schema, Mapping) or depth > 16:
        return None
    text = _compile_text(schema)
    if text is not None:
        return text
    checks: list[Predicate] = []
    for keyword, value in schema.items():
        if keyword in _META_KEYWORDS or keyword.startswith("x-") or keyword in _OBJECT_KEYWORDS:
            continue
        check = _compile_keyword(keyword, value, root, depth)
        if check is None:
            return None
        checks.append(check)
    if _OBJECT_KEYWORDS & schema.keys():
        object_check = _compile_object(schema, root, depth)
        if object_check is None:
            return None
        checks.append(object_check)
    return _all_of(checks)


_TEXT_KEYWORDS = frozenset({"type", "pattern", "minLength", "maxLength"})


def _compile_text(schema: Mapping[str, Any]) -> Predicate | None:
    """``{"type": "string"}`` with a pattern and lengths as one predicate (most inputs:
    prompts, URLs), instead of one per keyword; None for any other schema."""
    asserting = {k for k in schema if k not in _META_KEYWORDS and not k.startswith("x-")}
    if schema.get("type") != "string" or not asserting <= _TEXT_KEYWORDS:
        return None
    pattern, low, high = schema.get("pattern"), schema.get("minLength"), schema.get("maxLength")
    if not isinstance(pattern, str | None) or not all(
        isinstance(n, int | None) and not isinstance(n, bool) for n in (low, high)
    ):
        return None
    search = re.compile(pattern).search if pattern is not None else None
    least, most = low or 0, high if high is not None else float("inf")

    def check_text(value: Any) -> bool:
        return (
            type(value) is str
            and least <= len(value) <= most
            and (search is None or search(value) is not None)
        )

    return check_text


def _all_of(checks: list[Predicate]) -> Predicate:
    if not checks:
        return lambda _value: True
    if len(checks) == 1:
        return checks[0]

    def check_all(value: Any) -> bool:
        # A plain loop: all() over a generator costs a frame per job on the hot path.
        for check in checks:  # noqa: SIM110
            if not check(value):
                return False
        return True

    return check_all


def _compile_keyword(
    keyword: str, value: Any, root: Mapping[str, Any], depth: int
) -> Predicate | None:
    if keyword == "type":
        return _compile_type(value)
    if keyword in ("enum", "const"):
        return _compile_enum(value if keyword == "enum" else [value])
    if keyword == "$ref":
        return _compile_ref(value, root, depth)
    if keyword == "propertyNames":
        names = compile_fast(value, root, depth + 1)
        if names is None:
            return None
        return lambda v: not isinstance(v, dict) or all(names(k) for k in v)
    if keyword in ("allOf", "anyOf") and isinstance(value, list) and value:
        parts = _compile_each(dict(enumerate(value)), root, depth)
        if parts is None:
            return None
        options = list(parts.values())
        if keyword == "allOf":
            return _all_of(options)
        return lambda v: any(option(v) for option in options)
    if keyword == "items":
        element = compile_fast(value, root, depth + 1)
        if element is None:
            return None
        return lambda v: not isinstance(v, list) or all(element(x) for x in v)
    return _compile_scalar_keyword(keyword, value)


def _compile_type(value: Any) -> Predicate | None:
    names = [value] if isinstance(value, str) else list(value)
    allowed: set[type] = set()
    container = False
    for name in names:
        if name not in _PY_TYPES:
            return None
        allowed.update(_PY_TYPES[name])
        container = container or name in ("object", "array")
    exact = frozenset(allowed)
    if not container:
        return lambda v: type(v) in exact
    bases = tuple(t for t in exact if t in (dict, list))
    return lambda v: type(v) in exact or isinstance(v, bases)


def _compile_enum(values: list[Any]) -> Predicate | None:
    try:
        allowed = frozenset((type(v), v) for v in values)
    except TypeError:
        return None  # unhashable enum members: leave it to jsonschema

    def in_enum(v: Any) -> bool:
        try:
            return (type(v), v) in allowed
        except TypeError:
            return False

    return in_enum


def _compile_scalar_keyword(keyword: str, value: Any) -> Predicate | None:
    if keyword == "maxLength":
        return lambda v: type(v) is not str or len(v) <= value
    if keyword == "minLength":
        return lambda v: type(v) is not str or len(v) >= value
    if keyword == "minProperties":
        return lambda v: not isinstance(v, dict) or len(v) >= value
    if keyword == "maxItems":
        return lambda v: not isinstance(v, list) or len(v) <= value
    if keyword == "minItems":
        return lambda v: not isinstance(v, list) or len(v) >= value
    if keyword == "pattern":
        search = re.compile(value).search
        return lambda v: type(v) is not str or search(v) is not None
    numeric = (int, float)
    if keyword == "minimum":
        return lambda v: type(v) not in numeric or v >= value
    if keyword == "maximum":
        return lambda v: type(v) not in numeric or v <= value
    if keyword == "exclusiveMinimum":
        return lambda v: type(v) not in numeric or v > value
    if keyword == "exclusiveMaximum":
        return lambda v: type(v) not in numeric or v < value
    return None


def _compile_ref(ref: Any, root: Mapping[str, Any], depth: int) -> Predicate | None:
    if not isinstance(ref, str) or not ref.startswith("#/$defs/") or ref.count("/") != 2:
        return None
    target = root.get("$defs", {}).get(ref[len("#/$defs/") :])
    if target is None:
        return None
    return compile_fast(target, root, depth + 1)


def _compile_each(
    schemas: Mapping[Any, Any], root: Mapping[str, Any], depth: int
) -> dict[Any, Predicate] | None:
    """A predicate per subschema, by the same keys; None if any has none."""
    compiled = {}
    for key, sub in schemas.items():
        check = compile_fast(sub, root, depth + 1)
        if check is None:
            return None
        compiled[key] = check
    return compiled


def _compile_object(
    schema: Mapping[str, Any], root: Mapping[str, Any], depth: int
) -> Predicate | None:
    properties = _compile_each(schema.get("properties", {}), root, depth)
    by_pattern = _compile_each(schema.get("patternProperties", {}), root, depth)
    extra = compile_fast(schema.get("additionalProperties", True), root, depth + 1)
    if properties is None or by_pattern is None or extra is None:
        return None
    patterns = [(re.compile(pattern).search, check) for pattern, check in by_pattern.items()]
    required = tuple(schema.get("required", ()))

    def check_object(value: Any) -> bool:
        if not isinstance(value, dict):
            return True
        for name in required:
            if name not in value:
                return False
        for key, item in value.items():
            if patterns:  # every matching pattern's schema applies, and then no "extra"
                matched = [check for search, check in patterns if search(key) is not None]
                if matched:
                    named = properties.get(key)
                    if not all(check(item) for check in matched) or not (
                        named is None or named(item)
                    ):
                        return False
                    continue
            check = properties.get(key, extra)
            if not check(item):
                return False
        return True

    return check_object


# -- turning errors into messages ---------------------------------------------------------------


def show(value: Any, limit: int = 60) -> str:
    """A short, YAML-flavoured rendering of a value for messages (never a huge dump)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        if len(value) > limit:
            return repr(value[: limit - 3] + "...") + f" ({len(value):,} characters)"
        return repr(value)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def kind(value: Any) -> str:
    """What YAML made of a value, with a hint when it is probably a quoting mistake."""
    if isinstance(value, bool):
        return (
            f"a boolean ({show(value)}; YAML reads yes/no/on/off/true/false as booleans: quote it)"
        )
    if isinstance(value, int):
        return f"an integer ({value})"
    if isinstance(value, float):
        return f"a number ({value!r})"
    if isinstance(value, str):
        return f"a string ({show(value)})"
    if value is None:
        return "nothing (an empty value or null)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, date | datetime):
        return f"a date ({value.isoformat()}; YAML reads it as a date: quote it to keep text)"
    return type(value).__name__


_TYPE_WORDS = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
    "object": "a mapping",
    "array": "a list",
}


def _join_or(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def allowed_values(values: Iterable[Any]) -> str:
    """The enum as the API spells it: the string forms when there are any."""
    values = list(values)
    strings = [v for v in values if isinstance(v, str)]
    shown = strings if strings else values
    return ", ".join(show(v) for v in shown)


def problem(error: ValidationError) -> str:
    """What is wrong with the value and what is allowed, from one jsonschema error."""
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    custom = schema.get("x-messages", {}).get(str(error.validator))
    if custom:
        return str(custom)
    keyword, value, instance = error.validator, error.validator_value, error.instance
    description = schema.get("description")
    if keyword == "type":
        expected = [value] if isinstance(value, str) else list(value)
        return (
            f"expected {_join_or([_TYPE_WORDS.get(t, t) for t in expected])}, got {kind(instance)}"
        )
    if keyword == "enum":
        hint = ""
        if isinstance(instance, bool) and show(instance) not in value:
            hint = " (YAML reads yes/no/on/off/true/false as booleans: quote the value)"
        elif schema.get("x-suggest") and isinstance(instance, str | int | float):
            close = suggest(str(instance), [v for v in value if isinstance(v, str)])
            hint = f"; did you mean {show(close)}?" if close is not None else ""
        return f"{show(instance)} is not one of {allowed_values(value)}{hint}"
    if keyword == "const":
        return f"{show(instance)} must be {show(value)}"
    if keyword == "maxLength":
        return f"is {len(instance):,} characters long; at most {value:,} are allowed"
    if keyword == "minLength":
        return "must not be empty" if value == 1 else f"must be at least {value} characters long"
    if keyword in ("pattern", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        what = "is out of range" if keyword != "pattern" else "is not valid"
        expected_text = description or f"{keyword} {value}"
        return f"{show(instance)} {what}: expected {expected_text}"
    if keyword == "minItems":
        return f"must have at least {value} item{'s' if value != 1 else ''}"
    if keyword == "maxItems":
        return f"has {len(instance)} items; at most {value} are allowed"
    if keyword == "minProperties":
        return "must not be empty"
    message = str(error.message)
    return message if len(message) <= 200 else message[:197] + "..."


def suggest(name: str, known: Iterable[str]) -> str | None:
    """The known name closest to a mistyped one (``promt`` -> ``prompt``), if any is close."""
    known = list(known)

    def squash(text: str) -> str:
        return text.lower().replace("_", "").replace("-", "")

    for candidate in known:
        if squash(candidate) == squash(name):
            return candidate
    lowered = {candidate.lower(): candidate for candidate in known}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.7)
    return lowered[close[0]] if close else None


def unknown_key_message(
    name: str, known: Iterable[str], what: str = "key", also: Iterable[str] = ()
) -> str:
    """``unknown key 'promt'; did you mean 'prompt'?`` or the list of known names (``also``:
    names worth suggesting that the list does not show)."""
    known = list(known)
    hint = suggest(name, [*known, *also])
    if hint is not None:
        return f"unknown {what} {show(name)}; did you mean {show(hint)}?"
    return f"unknown {what} {show(name)} (allowed: {', '.join(known)})"


def extra_keys(error: ValidationError) -> list[str]:
    """The keys an ``additionalProperties: false`` error is about."""
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    known = set(schema.get("properties", {}))
    patterns = [re.compile(p) for p in schema.get("patternProperties", {})]
    instance = error.instance if isinstance(error.instance, dict) else {}
    return [
        str(key)
        for key in instance
        if key not in known and not any(p.search(str(key)) for p in patterns)
    ]


def numeric_string_bounds(
    schema: Mapping[str, Any],
) -> dict[str, tuple[float | None, float | None]]:
    """Bounds that a schema puts on integers but cannot put on the same number as text.

    A property accepting numbers and ``string`` with ``minimum``/``maximum`` (seed: 7 or
    "7") gets its bounds applied to numeric strings in code: JSON Schema's numeric keywords
    ignore strings.
    """
    bounds: dict[str, tuple[float | None, float | None]] = {}
    for name, sub in schema.get("properties", {}).items():
        if not isinstance(sub, Mapping):
            continue
        types = sub.get("type", [])
        types = [types] if isinstance(types, str) else list(types)
        numeric = "integer" in types or "number" in types
        if numeric and "string" in types and ("minimum" in sub or "maximum" in sub):
            bounds[name] = (sub.get("minimum"), sub.get("maximum"))
    return bounds
