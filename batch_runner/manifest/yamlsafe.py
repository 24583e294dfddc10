"""Safe YAML loading that keeps line numbers and refuses what PyYAML silently lets through.

Why not ``yaml.safe_load``: it keeps the last of two duplicate keys without a word, forgets
where every value came from (so errors cannot name a line), and leaves alias expansion
("billion laughs") to whoever walks the data next. Composing a node graph first to get the
lines costs about ten times the memory of the data and, through the garbage collector, tens
of seconds for a 100,000-job manifest.

So this module drives PyYAML's event parser (libyaml when installed) and builds plain
Python values directly: mappings become :class:`YMap` (a ``dict`` that remembers the line of
each key), sequences :class:`YSeq` (a ``list`` that remembers the line of each item). Keys are
always strings (their source text, so ``on:`` stays ``"on"``). Scalars are resolved exactly as
``SafeLoader`` resolves them (YAML 1.1: ``5`` is an int, ``false`` a bool, ``2024-01-01`` a
date). Only the standard data tags are accepted. Aliases share the anchored object (no copy)
and their expanded size is counted, so a document that multiplies its content through
aliases is refused before anyone expands it. Merge keys (``<<: *base``) work as in PyYAML.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import yaml
from yaml import events as ev
from yaml.constructor import SafeConstructor
from yaml.nodes import ScalarNode
from yaml.resolver import Resolver

from .._files import gc_paused

#: Deepest nesting accepted; real manifests use four or five levels.
MAX_DEPTH = 64
#: Alias expansion allowed on top of the parsed nodes: ``ALIAS_FACTOR`` times their number
#: plus ``ALIAS_ALLOWANCE``. Sharing a defaults block in every job stays far below; an
#: exponential alias chain ("billion laughs") goes far above.
ALIAS_FACTOR = 10
ALIAS_ALLOWANCE = 100_000

_PREFIX = "tag:yaml.org,2002:"
_STR = _PREFIX + "str"
_SCALAR_TAGS = {_PREFIX + t for t in ("str", "int", "float", "bool", "null")}
_ALLOWED_TAGS = _SCALAR_TAGS | {_PREFIX + "seq", _PREFIX + "map", "!"}
_PLAIN = (None, "")  # a plain scalar's style: None from PyYAML, "" from libyaml

_LoaderClass: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# First character -> the implicit resolvers to try, as SafeLoader.resolve does it.
_WILDCARD = Resolver.yaml_implicit_resolvers.get(None, [])
_RESOLVERS: dict[str, list[tuple[str, re.Pattern[str]]]] = {
    key: list(value) + list(_WILDCARD)
    for key, value in Resolver.yaml_implicit_resolvers.items()
    if key is not None
}

#: First characters of the plain scalars that may resolve to something else than text.
RESOLVED_FIRST = frozenset(_RESOLVERS)

_CONSTRUCTOR = SafeConstructor()
_BUILDERS: dict[str, Any] = {
    _PREFIX + "int": _CONSTRUCTOR.construct_yaml_int,
    _PREFIX + "float": _CONSTRUCTOR.construct_yaml_float,
    _PREFIX + "bool": _CONSTRUCTOR.construct_yaml_bool,
    _PREFIX + "null": _CONSTRUCTOR.construct_yaml_null,
    _PREFIX + "timestamp": _CONSTRUCTOR.construct_yaml_timestamp,
}


class YMap(dict[str, Any]):
    """A mapping that remembers its own line and the line of each of its keys (1-based)."""

    __slots__ = ("key_lines", "line")

    def __init__(self, line: int) -> None:  # empty already: no dict.__init__ to call
        self.line = line
        self.key_lines: dict[str, int] = {}


class YSeq(list[Any]):
    """A sequence that remembers its own line and the line of each item (1-based)."""

    __slots__ = ("item_lines", "line")

    def __init__(self, line: int) -> None:  # empty already: no list.__init__ to call
        self.line = line
        self.item_lines: list[int] = []


class YamlIssue(NamedTuple):
    """One problem in the YAML text, at a 1-based line."""

    line: int
    message: str


@dataclass
class YamlResult:
    """What :func:`load_yaml` found: the data (None when empty or fatal) and the problems.

    ``fatal`` means the data must not be used at all (a parse error, a refused tag, an alias
    bomb); other issues (duplicate keys) leave usable data behind so that further checks can
    still report everything else.
    """

    data: Any
    issues: list[YamlIssue] = field(default_factory=list)
    fatal: bool = False
    empty: bool = False


class _Fatal(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.issue = YamlIssue(line, message)


class _Frame:
    __slots__ = ("anchor", "is_map", "key", "key_line", "merges", "obj", "size")

    def __init__(self, obj: YMap | YSeq, anchor: str | None) -> None:
        self.obj = obj
        self.is_map = isinstance(obj, YMap)
        self.anchor = anchor
        self.size = 1
        self.key: str | None = None
        self.key_line = 0
        self.merges: list[tuple[Any, int]] = []


def _line(event: ev.Event) -> int:
    """The 1-based line where an event starts."""
    mark = event.start_mark
    return mark.line + 1 if mark is not None else 0


def show_tag(tag: str) -> str:
    """``tag:yaml.org,2002:python/object`` -> ``!!python/object``, as the user wrote it."""
    return "!!" + tag[len(_PREFIX) :] if tag.startswith(_PREFIX) else tag


def resolve_plain(value: str) -> Any:
    """Resolve and construct an untagged plain scalar the way SafeLoader does."""
    if value.isdigit() and value.isascii() and (value[0] != "0" or len(value) == 1):
        return int(value)  # a decimal integer (a seed), as the int resolver would give it
    resolvers = _RESOLVERS.get(value[:1])
    if resolvers is None:
        return value
    for tag, regexp in resolvers:
        if regexp.match(value):
            builder = _BUILDERS.get(tag)
            if builder is None:
                return value
            try:
                return builder(ScalarNode(tag, value))
            except (ValueError, OverflowError, TypeError):
                return value  # e.g. 2024-13-45 matches the date pattern but is no date
    return value


class _Builder:
    """Turns the parser's events into YMap/YSeq/scalars; one instance per document."""

    def __init__(self) -> None:
        self.stack: list[_Frame] = []
        self.anchors: dict[str, tuple[Any, int]] = {}
        self.open_anchors: set[str] = set()
        self.issues: list[YamlIssue] = []
        self.nodes = 0
        self.expanded = 0
        self.biggest_alias: tuple[int, str, int] = (0, "", 0)
        self.root: Any = None
        self.documents = 0
        self.keys: dict[str, str] = {}

    # -- scalars -----------------------------------------------------------------------

    def scalar(self, event: ev.ScalarEvent) -> None:
        """The hot path: 7 of 10 events are scalars, most of them plain keys and strings."""
        self.nodes += 1
        stack = self.stack
        top = stack[-1] if stack else None
        if top is not None and top.is_map and top.key is None:
            self._set_key(top, event, _line(event))
            return
        if event.tag is None and event.implicit[0] and event.style in _PLAIN:
            value = resolve_plain(event.value)
        else:
            value = self._scalar_value(event, _line(event))
        if event.anchor is not None:
            self.anchors[event.anchor] = (value, 1)
        self._attach(value, _line(event), 1)

    def _scalar_value(self, event: ev.ScalarEvent, line: int) -> Any:
        tag = event.tag
        if tag is None or tag == "!":
            if event.style in _PLAIN and event.implicit[0]:
                return resolve_plain(event.value)
            return event.value
        self._check_tag(tag, line)
        builder = _BUILDERS.get(tag)
        if builder is None:
            return event.value
        try:
            return builder(ScalarNode(tag, event.value))
        except (ValueError, OverflowError, TypeError) as exc:
            raise _Fatal(line, f"cannot read {event.value!r} as {show_tag(tag)}") from exc

    def _set_key(self, frame: _Frame, event: ev.ScalarEvent, line: int) -> None:
        if event.tag not in (None, "!"):
            self._check_tag(event.tag, line)
        key = event.value
        key = self.keys.setdefault(key, key)  # one string per distinct key, not per job
        if key == "<<" and event.style in _PLAIN and event.tag is None:
            key = "<<"  # merge key; its value is merged at the end of the mapping
            frame.key_line = -line
        else:
            frame.key_line = line
        frame.key = key

    def _check_tag(self, tag: str, line: int) -> None:
        if tag in _ALLOWED_TAGS:
            return
        shown = show_tag(tag)
        if shown.startswith("!!python/"):
            raise _Fatal(
                line,
                f"tag '{shown}' refused: manifests hold plain data only (strings, numbers, "
                "booleans, lists, mappings); Python objects are never constructed",
            )
        raise _Fatal(
            line,
            f"unsupported tag '{shown}': only plain data is allowed "
            "(strings, numbers, booleans, null, lists, mappings)",
        )

    # -- collections -------------------------------------------------------------------

    def start(self, event: ev.MappingStartEvent | ev.SequenceStartEvent) -> None:
        line = _line(event)
        self.nodes += 1
        if event.tag not in (None, "!"):
            self._check_tag(event.tag, line)
        top = self.stack[-1] if self.stack else None
        if top is not None and top.is_map and top.key is None:
            raise _Fatal(line, "a mapping key must be a plain value, not a list or mapping")
        if len(self.stack) >= MAX_DEPTH:
            raise _Fatal(line, f"nesting deeper than {MAX_DEPTH} levels")
        obj: YMap | YSeq = YMap(line) if isinstance(event, ev.MappingStartEvent) else YSeq(line)
        if event.anchor is not None:
            self.open_anchors.add(event.anchor)
        self.stack.append(_Frame(obj, event.anchor))

    def end(self) -> None:
        frame = self.stack.pop()
        obj = frame.obj
        if isinstance(obj, YMap) and frame.merges:
            self._apply_merges(obj, frame.merges)
        if frame.anchor is not None:
            self.open_anchors.discard(frame.anchor)
        self._register(frame.anchor, obj, frame.size)
        self._attach(obj, obj.line, frame.size)

    def _apply_merges(self, obj: YMap, merges: list[tuple[Any, int]]) -> None:
        explicit = set(obj)
        for source, line in merges:
            sources = source if isinstance(source, YSeq) else [source]
            for item in sources:
                if not isinstance(item, YMap):
                    raise _Fatal(line, "a merge key '<<' takes a mapping or a list of mappings")
                for key, value in item.items():
                    if key not in explicit and key not in obj:
                        obj[key] = value
                        obj.key_lines[key] = item.key_lines.get(key, line)

    # -- aliases -----------------------------------------------------------------------

    def alias(self, event: ev.AliasEvent) -> None:
        line = _line(event)
        name = event.anchor or ""
        if name in self.open_anchors:
            raise _Fatal(line, f"alias '*{name}' refers to a mapping or list that contains it")
        found = self.anchors.get(name)
        if found is None:
            raise _Fatal(line, f"alias '*{name}' has no anchor '&{name}' before it")
        value, size = found
        self.expanded += size
        if size > self.biggest_alias[0]:
            self.biggest_alias = (size, name, line)
        top = self.stack[-1] if self.stack else None
        if top is not None and top.is_map and top.key is None:
            if not isinstance(value, str):
                raise _Fatal(line, f"alias '*{name}' used as a key must refer to a string")
            top.key, top.key_line = value, line
            return
        self._attach(value, line, size)

    def _register(self, anchor: str | None, value: Any, size: int) -> None:
        if anchor is not None:
            self.anchors[anchor] = (value, size)

    # -- attaching values to their parent ----------------------------------------------

    def _attach(self, value: Any, line: int, size: int) -> None:
        if not self.stack:
            self.root = value
            return
        top = self.stack[-1]
        top.size += size
        obj = top.obj
        if not top.is_map:
            assert isinstance(obj, YSeq)
            obj.append(value)
            obj.item_lines.append(line)
            return
        assert isinstance(obj, YMap)
        key = top.key
        assert key is not None
        key_line = top.key_line
        top.key = None
        if key_line < 0:  # merge key
            top.merges.append((value, -key_line))
            return
        if key in obj:
            first = obj.key_lines[key]
            self.issues.append(
                YamlIssue(key_line, f"duplicate key '{key}' (first defined at line {first})")
            )
            return
        obj[key] = value
        obj.key_lines[key] = key_line


def _dispatch(builder: _Builder, event: Any) -> None:
    kind = type(event)
    if kind is ev.ScalarEvent:
        builder.scalar(event)
    elif kind is ev.MappingStartEvent or kind is ev.SequenceStartEvent:
        builder.start(event)
    elif kind is ev.MappingEndEvent or kind is ev.SequenceEndEvent:
        builder.end()
    elif kind is ev.AliasEvent:
        builder.alias(event)
    elif kind is ev.DocumentStartEvent:
        builder.documents += 1
        if builder.documents > 1:
            raise _Fatal(
                _line(event),
                "a second YAML document starts here; a manifest is a single document",
            )


def _parse(text: str, builder: _Builder) -> None:
    loader = _LoaderClass(text)
    try:
        get_event = loader.get_event
        scalar = builder.scalar
        scalar_event, stream_end = ev.ScalarEvent, ev.StreamEndEvent
        while True:
            event = get_event()
            kind = type(event)
            if kind is scalar_event:
                scalar(event)
            elif kind is stream_end:
                break
            else:
                _dispatch(builder, event)
    finally:
        loader.dispose()


def _yaml_error_issue(exc: yaml.YAMLError) -> YamlIssue:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line = mark.line + 1 if mark is not None else 1
    problem = getattr(exc, "problem", None)
    context = getattr(exc, "context", None)
    if problem:
        text = f"{context}, {problem}" if context else str(problem)
    else:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if mark is not None:
        text += f" (column {mark.column + 1})"
    return YamlIssue(line, f"not valid YAML: {text}")


def load_yaml(text: str) -> YamlResult:
    """Parse one YAML document into YMap/YSeq/scalars, collecting every problem found.

    Never raises for bad input: parse errors, refused tags, alias bombs and nesting limits
    come back as a fatal :class:`YamlIssue`. The garbage collector is paused while building,
    because its passes over the growing, cycle-free result dominate the cost otherwise.
    Text in the plain block subset most manifests use is read by
    :func:`~.yamlfast.parse_block` instead, to the same values and lines, several times
    faster; anything else (and anything with a problem) by the event parser.
    """
    from .yamlfast import parse_block

    with gc_paused():
        simple = parse_block(text)
    if simple is not None:
        return YamlResult(simple)
    builder = _Builder()
    try:
        with gc_paused():
            _parse(text, builder)
    except _Fatal as exc:
        return YamlResult(None, [*builder.issues, exc.issue], fatal=True)
    except yaml.YAMLError as exc:
        return YamlResult(None, [*builder.issues, _yaml_error_issue(exc)], fatal=True)
    limit = builder.nodes * ALIAS_FACTOR + ALIAS_ALLOWANCE
    if builder.expanded > limit:
        size, name, line = builder.biggest_alias
        return YamlResult(
            None,
            [
                *builder.issues,
                YamlIssue(
                    line,
                    f"aliases expand to {builder.expanded:,} nodes from {builder.nodes:,} "
                    f"written (limit {limit:,}); '*{name}' alone stands for {size:,} nodes. "
                    "Refused as a possible alias bomb",
                ),
            ],
            fatal=True,
        )
    empty = builder.documents == 0
    return YamlResult(builder.root, builder.issues, fatal=False, empty=empty)
