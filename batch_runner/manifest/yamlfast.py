"""The YAML most manifests are written in, read without the event parser.

A 100,000-job manifest is 400,000 lines of ``key: value``; PyYAML's event API spends about
5 µs per line on Python objects (an event and two marks per scalar), most of a ``validate``.
This module reads the plain block subset line by line, several times faster, and builds the
very :class:`~.yamlsafe.YMap` / :class:`~.yamlsafe.YSeq` values, lines and scalars the event
parser would (scalars go through the same resolver).

The subset, deliberately narrow: block mappings (``key: value``, ``key:`` and a nested block)
and block sequences (``- value``, ``- key: value``) of one-line scalars: plain ones without
``": "``, ``" #"`` or a leading indicator, quoted ones without escapes or inner quotes, and
flow sequences of such scalars (``[1, 2]``), ``{}``; keys made of ``[A-Za-z0-9_./-]``; whole-line
comments. Anything else (anchors, aliases, tags, flow mappings, block scalars, multi-line
scalars, trailing comments, tabs, CR, duplicate keys, document markers, an indentation the
subset does not expect) makes :func:`parse_block` return None, and the caller reads the text
with the full parser, which also reports every problem. So this path never accepts a text
the full parser would refuse, and never reads one differently (``tests/test_yamlfast.py``
compares the two on generated documents).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from .yamlsafe import MAX_DEPTH, RESOLVED_FIRST, YMap, YSeq, resolve_plain

#: Characters the subset never contains: anything but printable characters and LF (tabs,
#: CR, YAML 1.1's other line breaks NEL/LS/PS, controls, a BOM inside the text, surrogates).
#: Compiled on first use (8 ms): an ASCII text, the usual one, never needs it.
_OUTSIDE = "[^\n\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]"
_KEY = re.compile(r"([A-Za-z0-9_][A-Za-z0-9_./-]*):(?: +(.*))?")
#: A plain scalar cannot start with these (``-`` can, before a non-space: ``-5``).
_INDICATORS = frozenset("-?:,[]{}#&*!|>'\"%@`")
_FLOW_ITEM = re.compile(r" *(\"[^\"\\]*\"|'(?:[^']|'')*'|[^,\[\]{}#'\" ][^,\[\]{}#]*?) *(,|$)")
#: Values up to this long are shared between jobs (``540p``, ``5``, ``true``).
_SHARED_LENGTH = 16


_UNSEEN: Any = object()


class _Outside(Exception):
    """The text leaves the subset: read it with the full parser."""


def _uncomment(text: str) -> str:
    """A block value without its trailing comment (``5   # seconds`` -> ``5``)."""
    first = text[0]
    if first in "\"'":
        end = text.find(first, 1)
        while first == "'" and end >= 0 and text[end + 1 : end + 2] == "'":
            end = text.find(first, end + 2)  # '' inside single quotes is a quote
        if end < 0:
            raise _Outside  # the scalar goes on over several lines
        rest = text[end + 1 :]
        if rest and not (rest[0] == " " and rest.lstrip(" ")[0] == "#"):
            raise _Outside
        return text[: end + 1]
    cut = text.find(" #")
    return text if cut < 0 else text[:cut].rstrip(" ")


def _scalar(text: str, *, flow: bool = False) -> Any:
    """One scalar as the full parser resolves it; ``text`` has no surrounding spaces and
    no comment."""
    first = text[0]
    if first == '"':
        if len(text) < 2 or text[-1] != '"' or '"' in text[1:-1] or "\\" in text:
            raise _Outside
        return text[1:-1]
    if first == "'":
        inner = text[1:-1]
        if len(text) < 2 or text[-1] != "'" or "'" in inner.replace("''", ""):
            raise _Outside
        return inner.replace("''", "'")
    if first in _INDICATORS and (first != "-" or len(text) < 2 or text[1] == " "):
        raise _Outside
    if ": " in text or " #" in text or text[-1] == ":":
        raise _Outside
    if flow and any(c in text for c in ",[]{}:"):
        raise _Outside
    return resolve_plain(text)


def _flow_sequence(text: str, line: int) -> YSeq:
    """``[a, "b", 3]``: scalars only, no trailing comma."""
    seq = YSeq(line)
    inner = text[1:-1].strip(" ")
    if not inner:
        return seq
    pos = 0
    while pos < len(inner):
        found = _FLOW_ITEM.match(inner, pos)
        if found is None or (found.group(2) == "," and found.end() == len(inner)):
            raise _Outside
        seq.append(_scalar(found.group(1), flow=True))
        seq.item_lines.append(line)
        pos = found.end()
    return seq


class _Reader:
    """One pass over the lines; ``stack`` holds the open collections with their columns."""

    def __init__(self) -> None:
        self.stack: list[tuple[int, YMap | YSeq]] = []
        #: a ``key:`` whose value is on the lines below: (mapping, key, line, column)
        self.pending: tuple[YMap, str, int, int] | None = None
        self.keys: dict[str, str] = {}
        self.shared: dict[str, str] = {}

    def short(self, text: str) -> Any:
        """A short plain scalar resolved (``5`` -> 5), held once if it stays text."""
        value = resolve_plain(text)
        return self.shared.setdefault(value, value) if type(value) is str else value

    def value(self, text: str, line: int) -> Any:
        """A block value (comment allowed after it); ``text`` is not empty."""
        text = _uncomment(text)
        if text[0] == "{":
            if text[1:-1].strip(" ") or text[-1] != "}":
                raise _Outside  # only the empty flow mapping is in the subset
            return YMap(line)
        if text[0] == "[":
            if text[-1] != "]":
                raise _Outside
            return _flow_sequence(text, line)
        value = _scalar(text)
        if type(value) is str and len(value) <= _SHARED_LENGTH:
            value = self.shared.setdefault(value, value)
        return value

    def entry(self, mapping: YMap, found: re.Match[str], line: int, column: int) -> None:
        """``key: value`` (or ``key:``, its value to come) in ``mapping``."""
        key = found.group(1)
        key = self.keys.setdefault(key, key)
        if key in mapping:
            raise _Outside  # the full parser reports the duplicate
        text = found.group(2)
        if text is None or text[0] == "#":
            self.pending = (mapping, key, line, column)
            return
        mapping[key] = self.value(text, line)
        mapping.key_lines[key] = line

    def settle(self, column: int, dash: bool, line: int) -> None:
        """Give the pending key its value: the block starting on this line, or null."""
        assert self.pending is not None
        mapping, key, key_line, key_column = self.pending
        self.pending = None
        child: YMap | YSeq | None = None
        if dash and column >= key_column:
            child = YSeq(line)  # also at the key's own column: YAML's indentless sequence
        elif not dash and column > key_column:
            child = YMap(line)
        mapping[key] = child
        mapping.key_lines[key] = key_line
        if child is not None:
            if len(self.stack) >= MAX_DEPTH:
                raise _Outside  # the full parser says how deep is too deep
            self.stack.append((column, child))

    def line(self, text: str, line: int) -> None:
        content = text.lstrip(" ")
        column = len(text) - len(content)
        dash = content[0] == "-" and (len(content) == 1 or content[1] == " ")
        if self.pending is not None:
            self.settle(column, dash, line)
        stack = self.stack
        if dash:
            while stack and stack[-1][0] > column:
                stack.pop()
            if not stack or stack[-1][0] != column or type(stack[-1][1]) is not YSeq:
                raise _Outside
            seq = stack[-1][1]
            rest = content[1:].lstrip(" ")
            if not rest or (rest[0] == "-" and (len(rest) == 1 or rest[1] == " ")):
                raise _Outside  # an empty item, or a sequence in a sequence
            found = _KEY.fullmatch(rest)
            if found is None:
                if rest[0] == "#":
                    raise _Outside  # "- # comment": an empty item
                seq.append(self.value(rest, line))
            else:
                if len(stack) >= MAX_DEPTH:
                    raise _Outside
                item = YMap(line)
                seq.append(item)
                item_column = column + len(content) - len(rest)
                stack.append((item_column, item))
                self.entry(item, found, line, item_column)
            seq.item_lines.append(line)
            return
        found = _KEY.fullmatch(content)
        if found is None:
            raise _Outside
        while stack and (
            stack[-1][0] > column or (stack[-1][0] == column and type(stack[-1][1]) is YSeq)
        ):
            stack.pop()
        if not stack or stack[-1][0] != column:
            raise _Outside
        mapping = stack[-1][1]
        assert type(mapping) is YMap
        self.entry(mapping, found, line, column)


def _outside_subset(text: str) -> bool:
    """True when ``text`` holds a character the subset never contains."""
    if text.isascii():  # the usual case: a fast check in C instead of a regex pass
        return bool(text.encode("ascii").translate(None, _PRINTABLE_ASCII))
    return re.compile(_OUTSIDE).search(text) is not None  # (re caches the compiled form)


_PRINTABLE_ASCII = bytes([10, *range(0x20, 0x7F)])


def top_level_text(data: bytes, key: str) -> str | None:
    """The text of ``key: value`` when the document has exactly one line starting with
    ``key:`` and its value is a plain or simply quoted string; None otherwise.

    A hint for finding things before a full read (where a finished run's seal may be), not
    a reading of the document: a line inside a multi-line scalar looks the same, and a key
    set through a merge is missed. Whoever acts on it must check what it found against the
    full reading's record (the seal's key says which folder the full path chose)."""
    needle = b"\n" + key.encode("ascii") + b":"
    starts = [0] if data.startswith(needle[1:]) else []
    at = data.find(needle)  # a search in C: 10 ms over a 22 MB manifest, not a regex pass
    while at >= 0 and len(starts) < 2:
        starts.append(at + 1)
        at = data.find(needle, at + 1)
    if len(starts) != 1:
        return None
    begin = starts[0] + len(needle) - 1
    end = data.find(b"\n", begin)
    line = data[begin : end if end >= 0 else len(data)]
    if not line.startswith(b" "):
        return None  # "key:value" is one plain scalar, not a key and its value
    try:
        text = line.decode("utf-8").strip(" ")
    except UnicodeDecodeError:
        return None
    if not text or _outside_subset(text):
        return None
    try:
        value = _scalar(_uncomment(text))
    except _Outside:
        return None
    return value if isinstance(value, str) and value else None


def parse_block(text: str) -> YMap | None:
    """The document as :func:`~.yamlsafe.load_yaml` reads it, when it is a mapping written
    in the plain block subset without any problem; None otherwise (read it in full)."""
    if _outside_subset(text):
        return None
    try:
        return _read(_rows(text), _Reader())
    except _Outside:
        return None


def _pieces(text: str, piece: int = 1 << 18) -> Iterator[str]:
    """``text`` cut at newlines into pieces of about 256 KiB (the newlines between pieces
    dropped): a 100,000-job manifest is 400,000 lines, and splitting it at once holds them
    all (35 MB) beside the values read from them."""
    start = 0
    while True:
        end = text.find("\n", start + piece)
        if end < 0:
            yield text[start:]
            return
        yield text[start:end]
        start = end + 1


#: One line of the text, as (indent, "- " or "", key, value, other): the first four when the
#: line is ``key: value`` or ``- key: value`` (the value as written, up to the end of the
#: line), else ``other`` is the whole line (empty for an empty line). ``findall`` matches
#: every line exactly once, in C: most lines of a large manifest then cost the reader a
#: tuple and the few tests of :func:`_read`.
_ROW = re.compile(r"^(?:( *)(- )?([A-Za-z0-9_][A-Za-z0-9_./-]*): +(.*)|(.*))$", re.MULTILINE)


def _rows(text: str, piece: int = 1 << 18) -> Iterator[tuple[str, str, str, str, str]]:
    """:data:`_ROW`'s tuple for every line of ``text``, in order, a piece at a time."""
    findall = _ROW.findall
    for part in _pieces(text, piece):
        yield from findall(part)


def _read(  # noqa: C901 (one hot loop)
    rows: Iterable[tuple[str, str, str, str, str]], reader: _Reader
) -> YMap | None:
    """Every row of :func:`_rows`: inline when it is the next ``key: plain value`` of the
    mapping being read or ``- key: plain value`` starting the next mapping of the sequence
    being read (most lines of a large manifest); anything else, the line as written (but
    for the spaces after the colon), through :meth:`_Reader.line`."""
    stack, keys, shared = reader.stack, reader.keys, reader.shared
    resolved_short: dict[str, Any] = {}  # short values that may not be text, resolved
    general, resolved_first, indicators = reader.line, RESOLVED_FIRST, _INDICATORS
    root: YMap | None = None
    number = 0
    for indent, dash, key, value, other in rows:
        number += 1
        if value[-1:] == " ":
            value = value.rstrip(" ")
        if (
            value
            and root is not None
            and reader.pending is None
            and value[0] not in indicators
            and ": " not in value
            and " #" not in value
            and value[-1] != ":"
        ):
            column = len(indent)
            mapping: YMap | None = None
            if dash:
                if len(stack) > 1 and stack[-2][0] == column and type(stack[-2][1]) is YSeq:
                    seq = stack[-2][1]
                    mapping = YMap(number)
                    seq.append(mapping)
                    seq.item_lines.append(number)
                    stack[-1] = (column + 2, mapping)
            else:
                top_column, top = stack[-1]
                if top_column == column and type(top) is YMap:
                    if key in top:
                        raise _Outside  # a duplicate key: the full parser reports it
                    mapping = top
            if mapping is not None:
                known = keys.get(key)
                if known is None:
                    known = keys[key] = key
                resolved: Any = value
                if value[0] in resolved_first:  # maybe not text: "5", "true", "720p"
                    if len(value) > _SHARED_LENGTH:
                        resolved = resolve_plain(value)
                    else:  # resolved once: short values repeat (seeds do not, much)
                        resolved = resolved_short.get(value, _UNSEEN)
                        if resolved is _UNSEEN:
                            resolved = resolved_short[value] = reader.short(value)
                elif len(value) <= _SHARED_LENGTH:
                    resolved = shared.setdefault(value, value)
                mapping[known] = resolved
                mapping.key_lines[known] = number
                continue
        line = other if not key else f"{indent}{dash}{key}: {value}"
        if line[-1:] == " ":
            line = line.rstrip(" ")
        if not line:
            continue
        content = line.lstrip(" ")
        if content[0] == "#":
            continue
        if root is None:
            if content[0] == "-" or line[0] == " ":
                return None  # a sequence or an indented start: not the subset
            root = YMap(number)
            stack.append((0, root))
        general(line, number)
    if reader.pending is not None:
        mapping, key, line_of_key, _column = reader.pending
        mapping[key] = None
        mapping.key_lines[key] = line_of_key
    return root
