"""The block-subset reader (``yamlfast``) never reads a text differently from the event parser.

For any text, :func:`parse_block` either declines (None: the event parser reads it) or returns
exactly the values, types and line numbers the event parser gives, and only for texts the
event parser reads without a problem. Checked on hand-picked edge cases and on generated
documents made of the pieces YAML gets wrong most often.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import batch_runner.manifest.yamlfast as yamlfast
from batch_runner.manifest.yamlfast import parse_block
from batch_runner.manifest.yamlsafe import YMap, YSeq, load_yaml

ROOT = Path(__file__).resolve().parent.parent


def shape(value: Any) -> Any:
    """Values, types and every line number, comparable with ``==``."""
    if isinstance(value, YMap):
        items = [(k, value.key_lines[k], shape(v)) for k, v in value.items()]
        return ("map", value.line, items, sorted(value.key_lines.items()))
    if isinstance(value, YSeq):
        items = [(line, shape(v)) for line, v in zip(value.item_lines, value, strict=True)]
        return ("seq", value.line, items)
    if isinstance(value, float) and value != value:
        return ("float", "nan")
    return (type(value).__name__, value)


def event_parser(text: str, monkeypatch: pytest.MonkeyPatch | None = None) -> Any:
    """What the event parser alone makes of ``text``."""
    original = yamlfast.parse_block
    yamlfast.parse_block = lambda _text: None  # type: ignore[assignment]
    try:
        return load_yaml(text)
    finally:
        yamlfast.parse_block = original  # type: ignore[assignment]


def check_same(text: str) -> bool:
    """True when the fast path took the text (and then read it exactly as the parser)."""
    fast = parse_block(text)
    if fast is None:
        return False
    slow = event_parser(text)
    assert not slow.fatal and not slow.issues, (text, slow.issues)
    assert shape(fast) == shape(slow.data), text
    return True


TAKEN = [
    "a: 1\n",
    "a: 1\nb:\n  c: 2\n  d: [1, 2, x]\n",
    "jobs:\n- id: a\n  prompt: p\n- id: b\n",
    "jobs:\n  - id: a\n    prompt: p\n\n  - id: b\n    seed: 5\nother: x\n",
    "a:\n  - x\n  - y: 1\n    z:\n  - 3\nb: ~\n",
    "# head\n\nmodel: M  # trailing\ndefaults:\n  quality: 540p\n  duration: 5   # s\n",
    "k: 'it''s'\nq: \"a b\"\ne: ''\nf: \"\"\n",
    "k: 'x' # c\nl: \"y\"   # c\n",
    "on: yes\n5: 2\nnull: null\nt: 2024-01-01\nf: 1.5\nh: 0x1F\nn: -5\nu: 1_000\n",
    "k: http://x:80/y?a=1#frag\nl: a#b\nm: a:b\n",
    "a:\nb:\n",
    "a:\n  b:\n    c:\n",
    "s: [ ]\nt: []\nu: ['a', \"b\", c d]\n",
    "k: é ü 日本\n",
    "x-anchors: 1\nkey.with/slash-and_: v\n",
    "a: -x\nb: -.5\n",
    "a: {}\nb: { }\n",
    "a:\n  # comment\n  b: 1\n",
]
DECLINED = [
    "",
    "# only a comment\n",
    "- a\n",
    "  a: 1\n",
    "a: 1\na: 2\n",
    "a: &x 1\nb: *x\n",
    "a: !!str 5\n",
    "a: |\n  text\n",
    "a: >-\n  text\n",
    "a: {b: 1}\n",
    "a: {b}\n",
    "a: b: c\n",
    "a: x\n  continued\n",
    "a: 'multi\n  line'\n",
    '"a": 1\n',
    "<<: {a: 1}\n",
    "a:\tb\n",
    "a: 1\r\nb: 2\r\n",
    "---\na: 1\n",
    "a: 1\n...\n",
    "a: [1, 2,]\n",
    "a: [a: b]\n",
    'a: "x\\ny"\n',
    "a: %x\n",
    "a: @x\n",
    "a: `x\n",
    "a:\n  - x\n y: 1\n",
    "a: - x\n",
    "a: x:\n",
    "a:\n-\n",
    "a:\n- - x\n",
    "a:\n- # c\n",
    'a: "x"#c\n',
    "a: 1\u2028b: 2\n",
    "a: 1\x85\n",
    "a: \ufeff1\n",
]


@pytest.mark.parametrize("text", TAKEN)
def test_the_subset_is_read_as_the_event_parser_reads_it(text: str) -> None:
    assert check_same(text), f"declined: {text!r}"


@pytest.mark.parametrize("text", DECLINED)
def test_everything_else_is_left_to_the_event_parser(text: str) -> None:
    assert parse_block(text) is None


def test_the_example_manifests_read_the_same() -> None:
    for path in [*ROOT.glob("manifests/*.yaml"), *ROOT.glob("tests/data/**/*.yaml")]:
        check_same(path.read_text("utf-8"))


def test_a_large_generated_manifest_takes_the_fast_path() -> None:
    lines = ["model: PixVerse/image-to-video-v5", "defaults:", "  quality: 540p", "jobs:"]
    for i in range(300):
        lines += [f"  - id: job-{i}", f"    prompt: Variation {i}, slow: drone"[:-7] + " drone"]
        lines += [f"    inputImageUrl: https://x/{i}.jpg"] + (["    seed: 5"] if i % 3 else [])
    assert check_same("\n".join(lines) + "\n")


def test_keys_and_short_values_are_shared_between_jobs() -> None:
    root = parse_block("jobs:\n- quality: 540p\n  p: a\n- quality: 540p\n  p: b\n")
    assert root is not None
    first, second = root["jobs"]
    assert first["quality"] is second["quality"]
    assert next(iter(first)) is next(iter(second))


# -- generated documents ---------------------------------------------------------------------

KEYS = ["a", "b", "id", "on", "5", "x-a", "a.b", "k/v", "a b", "<<", '"q"', "'s'", "-k", "?"]
VALUES = [
    "1", "-5", "1.5", "1e3", ".inf", "0x1F", "0o7", "1_000", "5:00", "yes", "On", "~", "null",
    "", "2024-01-01", "2024-13-45", "x", "a b", "a: b", "a:b", "a #c", "a#b", "x:", "- x", "-x",
    "'it''s'", "'a'  # c", "'a'b", "'''", "''''", '"x"', '"a\\nb"', '"a" #c', '"a"#c', '"x',
    "[1, 2]", "[a,b]", "[]", "[ ]", "[a, [b]]", "[a,]", "['x, y', z]", "[a: b]", "{a: 1}",
    "&a x", "*a", "!!str x", "!x y", "|", ">-", "#c", "%x", "@x", "`x", "é", "日本", "\t",
    "a\tb", "a ", "http://x:80/y",
]  # fmt: skip
LINE = st.tuples(
    st.sampled_from([0, 0, 1, 2, 2, 4, 4, 6]),  # indentation
    st.sampled_from(["", "", "", "- ", "-  ", "- - ", "-"]),  # a sequence entry
    st.one_of(st.none(), st.sampled_from(KEYS)),  # a key (None: a bare value)
    st.sampled_from([": ", ":", ":  ", " : "]),
    st.sampled_from(VALUES),
    st.sampled_from(["", "", "", "  # note", " #", "#x"]),  # a trailing comment
)
DOCUMENT = st.lists(
    st.one_of(LINE, st.sampled_from(["", "# c", "  # c", "---", "...", "   "])),
    min_size=1,
    max_size=14,
)


def render(lines: list[Any]) -> str:
    out = []
    for item in lines:
        if isinstance(item, str):
            out.append(item)
            continue
        indent, dash, key, colon, value, comment = item
        body = value if key is None else f"{key}{colon}{value}"
        out.append(" " * indent + dash + body + comment)
    return "\n".join(out) + "\n"


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(DOCUMENT)
def test_generated_texts_are_declined_or_read_the_same(lines: list[Any]) -> None:
    check_same(render(lines))


def block(value: Any, indent: int) -> list[str]:
    """A plain block-style rendering of nested data (the subset's own shape)."""
    pad = " " * indent
    if isinstance(value, dict):
        out = []
        for k, v in value.items():
            if isinstance(v, dict | list) and v:
                out += [f"{pad}{k}:", *block(v, indent + 2)]
            else:
                out.append(f"{pad}{k}: {scalar(v)}")
        return out
    out = []
    for v in value:
        inner = block(v, indent + 2) if isinstance(v, dict | list) and v else []
        if isinstance(v, dict) and inner:
            out.append(f"{pad}- {inner[0].lstrip()}")
            out += inner[1:]
        elif isinstance(v, list) and v:
            out += [f"{pad}-", *inner]
        else:
            out.append(f"{pad}- {scalar(v)}")
    return out


def scalar(value: Any) -> str:
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[" + ", ".join(scalar(v) for v in value) + "]"
    if isinstance(value, str):
        return value
    return yaml.safe_dump(value).splitlines()[0]


_NAME = st.from_regex(r"[a-z0-9_][a-z0-9_./-]{0,5}", fullmatch=True)
NAMES = st.one_of(_NAME, _NAME, _NAME, _NAME, st.sampled_from(KEYS))
WORDS = st.sampled_from(["540p", "5", "true", "x", "a b", "PixVerse/image-to-video-v5", "-3"])
TEXTS = st.one_of(
    *[WORDS] * 6, st.sampled_from(VALUES), st.text(alphabet="ab :#-'\"[],é", max_size=8)
)
DATA = st.recursive(
    st.one_of(TEXTS, st.integers(), st.booleans(), st.none(), st.dates()),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(NAMES, children, max_size=4)
    ),
    max_leaves=20,
)
#: one small change to a well-formed document: (line index, what to do)
EDITS = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=30),
        st.sampled_from(["indent+1", "indent-1", "indent+2", "indent-2", "dup", "comment",
                         "blank", "tail-comment", "drop"]),
    ),
    max_size=1,
)  # fmt: skip


def edited(lines: list[str], edits: list[tuple[int, str]]) -> str:
    lines = list(lines)
    for index, what in edits:
        if not lines:
            break
        i = index % len(lines)
        line = lines[i]
        if what.startswith("indent"):
            step = int(what[-2:])
            lines[i] = " " * max(0, len(line) - len(line.lstrip(" ")) + step) + line.lstrip(" ")
        elif what == "dup":
            lines.insert(i, line)
        elif what == "comment":
            lines.insert(i, " " * (index % 5) + "# note")
        elif what == "blank":
            lines.insert(i, "")
        elif what == "tail-comment":
            lines[i] = line + "  # note"
        else:
            del lines[i]
    return "\n".join(lines) + "\n"


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(NAMES, DATA, min_size=1, max_size=5), EDITS)
def test_generated_block_documents_are_declined_or_read_the_same(
    data: dict[str, Any], edits: list[tuple[int, str]]
) -> None:
    check_same(edited(block(data, 0), edits))


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(NAMES, DATA, min_size=1, max_size=5))
def test_what_pyyaml_writes_is_declined_or_read_the_same(data: dict[str, Any]) -> None:
    check_same(yaml.safe_dump(data, allow_unicode=True, default_flow_style=False))


@given(st.text(alphabet="ab \n", max_size=60), st.integers(min_value=1, max_value=8))
def test_pieces_are_the_texts_lines_whatever_the_piece(text: str, piece: int) -> None:
    """The reader takes the text a piece at a time: the same lines, in the same order,
    including the empty ones at either end and between newlines."""
    lines = [line for part in yamlfast._pieces(text, piece) for line in part.split("\n")]
    assert lines == text.split("\n")


@given(st.text(alphabet="ab: -#\n", max_size=80), st.integers(min_value=1, max_value=8))
def test_rows_are_the_texts_lines_whatever_the_piece(text: str, piece: int) -> None:
    """Every line gives one row: ``key: value`` taken apart, anything else whole."""
    rows = list(yamlfast._rows(text, piece))
    lines = text.split("\n")
    assert len(rows) == len(lines)
    for (indent, dash, key, value, other), line in zip(rows, lines, strict=True):
        if key:
            head = f"{indent}{dash}{key}:"
            assert not other and line.startswith(head + " ")
            assert line[len(head) :].lstrip(" ") == value
        else:
            assert (indent, dash, value, other) == ("", "", "", line)


@pytest.mark.parametrize(
    ("text", "found"),
    [
        (b"model: m\noutput_dir: out/a\njobs: []\n", "out/a"),
        (b"output_dir: 'it''s here'  # a comment\n", "it's here"),
        (b'output_dir: "quoted"\n', "quoted"),
        (b"jobs:\n  - output_dir: no\n", None),  # not at the top level
        (b"output_dir: a\noutput_dir: b\n", None),  # twice: the full reading reports it
        (b"output_dir:\n", None),
        (b"output_dir: 5\n", None),
        (b"output_dir: [a, b]\n", None),
        (b'output_dir: "cut\n', None),
        (b"output_dir: \xff\n", None),
        (b"model: m\n", None),
        (b"jobs: []\noutput_dir: last", "last"),  # no newline at the end
        (b"output_dir:glued\n", None),  # one plain scalar, not a key and its value
        (b"output_dirs: a\n", None),
        (b"x: 1\noutput_dir: b\r\n", None),
    ],
)
def test_a_top_level_text_is_found_by_its_line(text: bytes, found: str | None) -> None:
    assert yamlfast.top_level_text(text, "output_dir") == found
