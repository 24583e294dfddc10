"""The building blocks of manifest loading: ids, fingerprints, prices, the schema fast path,
and the YAML loader's agreement with PyYAML's SafeLoader."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from batch_runner._resources import schemas_dir
from batch_runner.manifest.job import (
    ID_PATTERN,
    Job,
    checked_id_problem,
    derive_job_id,
    fingerprint,
    id_part,
    id_problem,
    matrix_job_id,
    normalise_value,
    slugify,
)
from batch_runner.manifest.pricing import estimate_job_cost, estimate_total, unpriced
from batch_runner.manifest.schemacheck import Checker, load_schema, strict_validator, suggest
from batch_runner.manifest.yamlsafe import YMap, YSeq, load_yaml
from batch_runner.models.store import read_definition, shipped_dir

MODEL = "PixVerse/image-to-video-v5"
DEFINITION = shipped_dir() / "PixVerse" / "image-to-video-v5.json"


def model_schema() -> dict[str, Any]:
    return read_definition(DEFINITION).schema


# -- schemas -------------------------------------------------------------------------------------


def test_schemas_are_valid_2020_12() -> None:
    manifest = json.loads((schemas_dir() / "manifest.schema.json").read_text(encoding="utf-8"))
    for schema in [manifest, model_schema()]:
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        strict_validator().check_schema(schema)


def test_id_pattern_matches_the_schema() -> None:
    schema = load_schema(schemas_dir() / "manifest.schema.json")
    assert schema["$defs"]["job_id"]["pattern"] == ID_PATTERN


def test_model_schema_covers_the_api_inputs() -> None:
    schema = model_schema()
    assert list(schema["properties"]) == [
        "inputImageUrl",
        "prompt",
        "negativePrompt",
        "duration",
        "quality",
        "style",
        "seed",
        "Watermark",
        "callbackUrl",
    ]
    assert schema["required"] == ["inputImageUrl", "prompt"]
    assert schema["properties"]["prompt"]["maxLength"] == 2048
    assert schema["x-image-input"] == "inputImageUrl"


# -- the fast path never accepts what jsonschema refuses ------------------------------------------

_VALUES = st.one_of(
    st.sampled_from(
        [
            "5",
            "8",
            "540p",
            "1080p",
            "4k",
            "",
            " ",
            "anime",
            "false",
            "true",
            "False",
            "0",
            "2147483647",
            "2147483648",
            "-1",
            "https://x/y.jpg",
            "castle.jpg",
            "ftp://x",
        ]
    ),
    st.text(max_size=12),
    st.integers(min_value=-3, max_value=2**31 + 3),
    st.sampled_from([0, 5, 8, 2147483647, 2147483648]),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([5.0, 8.0, 1.5]),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
_NAMES = st.sampled_from(
    ["inputImageUrl", "prompt", "negativePrompt", "duration", "quality", "style", "seed",
     "Watermark", "callbackUrl", "promt"]
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(_NAMES, _VALUES, max_size=6))
def test_fast_path_agrees_with_jsonschema(instance: dict[str, Any]) -> None:
    schema = model_schema()
    checker = Checker(schema)
    assert checker.fast is not None
    valid = checker.validator.is_valid(instance)
    if checker.fast(instance):
        assert valid, instance
    assert (checker.errors(instance) == []) == valid


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["id", "image", "prompt"]),
        st.one_of(st.text(max_size=10), st.integers(), st.none(), st.sampled_from(["a..b", "x/y"])),
    )
)
def test_fast_path_with_refs_agrees_with_jsonschema(instance: dict[str, Any]) -> None:
    root = load_schema(schemas_dir() / "manifest.schema.json")
    checker = Checker({"$defs": root["$defs"], "$ref": "#/$defs/job"}, root)
    assert checker.fast is not None
    if checker.fast(instance):
        assert checker.validator.is_valid(instance), instance


_TOP_VALUES = st.one_of(
    _VALUES,
    st.sampled_from(["a.csv", "b.jsonl", "c.txt", "PixVerse/image-to-video-v5", "s3://b/p"]),
    st.lists(st.sampled_from(["a.csv", "b.txt", 3]), max_size=2),
    st.dictionaries(
        st.sampled_from(["quality", "PixVerse/image-to-video-v5"]), _VALUES, max_size=2
    ),
)


@settings(max_examples=400, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["model", "defaults", "models", "jobs", "jobs_from", "matrix",
                         "output_dir", "concurrency", "publish", "x-anchor", "x-", "jobz"]),
        _TOP_VALUES,
        max_size=5,
    )
)  # fmt: skip
def test_fast_path_of_the_top_level_agrees_with_jsonschema(instance: dict[str, Any]) -> None:
    """The top level (``allOf``/``anyOf``, ``patternProperties``) is checked without
    jsonschema when the fast path can say yes, and it says yes only when jsonschema would."""
    root = load_schema(schemas_dir() / "manifest.schema.json")
    checker = Checker(root)
    assert checker.fast is not None
    if checker.fast(instance):
        assert checker.validator.is_valid(instance), instance


def test_pattern_properties_apply_with_the_named_ones() -> None:
    """A key matching a pattern meets every matching pattern's schema and its own, and no
    ``additionalProperties``; a key matching none meets ``additionalProperties``."""
    schema = {
        "type": "object",
        "properties": {"x-n": {"type": "integer"}},
        "patternProperties": {"^x-": {"type": ["integer", "string"]}, "n$": {"minimum": 2}},
        "additionalProperties": False,
    }
    checker = Checker(schema)
    assert checker.fast is not None
    for instance in [{"x-n": 3}, {"x-a": "s"}, {"x-n": "s"}, {"x-n": 1}, {"y": 1}, {}, {"x-": []}]:
        assert checker.fast(instance) == checker.validator.is_valid(instance), instance


def test_yaml_lists_meet_the_array_keywords() -> None:
    """A YAML list is a list subclass (it remembers its lines): ``maxItems``, ``minItems``
    and ``items`` apply to it as jsonschema applies them."""
    checker = Checker({"type": "array", "minItems": 2, "maxItems": 3, "items": {"type": "string"}})
    for values, valid in [
        (["a", "b"], True),
        (["a"], False),
        (["a"] * 4, False),
        (["a", 1], False),
    ]:
        listed = YSeq(1)
        listed.extend(values)
        assert checker.fast is not None and checker.fast(listed) == valid, values
        assert (checker.errors(listed) == []) == valid, values


def test_unsupported_keywords_disable_the_fast_path() -> None:
    assert Checker({"type": "object", "dependentRequired": {"a": ["b"]}}).fast is None
    assert Checker({"oneOf": [{"type": "string"}]}).fast is None
    assert Checker({"allOf": [{"not": {"type": "string"}}]}).fast is None
    assert Checker({"$ref": "https://example.com/x"}).fast is None


def test_every_shipped_definition_has_a_valid_schema() -> None:
    """The package's definitions are read without the metaschema check at run time."""
    files = sorted(shipped_dir().rglob("*.json"))
    assert files
    for path in files:
        strict_validator().check_schema(read_definition(path).schema)


def test_floats_are_not_integers() -> None:
    checker = Checker({"type": "integer"})
    assert checker.errors(5) == []
    assert checker.errors(5.0) != []
    assert checker.errors(True) != []


def test_suggest() -> None:
    known = ["inputImageUrl", "prompt", "negativePrompt", "Watermark"]
    assert suggest("promt", known) == "prompt"
    assert suggest("watermark", known) == "Watermark"
    assert suggest("negative_prompt", known) == "negativePrompt"
    assert suggest("colour", known) is None


# -- ids -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "good", ["a", "castle", "job-0007", "A.b_c-d", "x" * 128, "1080p", "a__seed-1__quality-720p"]
)
def test_good_ids(good: str) -> None:
    assert id_problem(good) is None


@pytest.mark.parametrize(
    "bad",
    ["", ".", "..", "a..b", "a/b", "a\\b", "-a", "_a", ".a", "a.", "a b", "é", "x" * 129,
     "con", "CON.txt", "lpt9", "ledger.json", "Index.HTML", "journal.jsonl"],
)  # fmt: skip
def test_bad_ids(bad: str) -> None:
    assert id_problem(bad) is not None


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.text(alphabet="abcCONlptNUL019._-/\\ é", max_size=12),
        st.sampled_from(["gallery", "GALLERY", "Com1", "aux", "x" * 128, "x" * 129, "a-"]),
    )
)
def test_the_plain_id_fast_path_answers_as_every_check(job_id: str) -> None:
    assert id_problem(job_id) == checked_id_problem(job_id)
    assert id_problem("gallery") is not None and id_problem("nul") is not None


def test_slugify() -> None:
    assert slugify("Animate the Louvre scene with realistic effects") == (
        "animate-the-louvre-scene-with"
    )
    assert slugify("Café au lait!") == "cafe-au-lait"
    assert slugify("日本語") == ""
    assert slugify("x" * 50) == "x" * 32


def test_derive_job_id() -> None:
    digest = "0123456789abcdef" * 4
    assert derive_job_id("A castle at dawn", digest) == "a-castle-at-dawn-0123456789ab"
    assert derive_job_id("A castle at dawn", digest, 2) == "a-castle-at-dawn-0123456789ab-2"
    assert derive_job_id(None, digest) == "job-0123456789ab"
    assert derive_job_id("日本語", digest) == "job-0123456789ab"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80), st.text(max_size=40), st.text(max_size=200))
def test_generated_ids_are_always_valid(prompt: str, value: str, long_value: str) -> None:
    base = derive_job_id(prompt, "f" * 64)
    assert id_problem(base) is None
    for combination in ([("seed", value)], [("negativePrompt", long_value), ("style", value)]):
        generated = matrix_job_id(base, combination)
        assert id_problem(generated) is None, generated
        assert matrix_job_id(base, combination) == generated


def test_id_part() -> None:
    assert id_part("720p") == "720p"
    assert id_part("1") == "1"
    assert id_part("blurry, low quality").startswith("blurry-low-quality-")
    assert id_part("") != id_part(" ")
    assert id_problem("a__x-" + id_part("")) is None


def test_matrix_job_id() -> None:
    pairs = [("seed", "1"), ("quality", "720p")]
    assert matrix_job_id("castle", pairs) == "castle__seed-1__quality-720p"
    long = matrix_job_id("x" * 126, pairs)
    assert len(long) <= 128 and id_problem(long) is None
    assert long != matrix_job_id("x" * 126, [("seed", "2"), ("quality", "720p")])


# -- normalisation and fingerprints ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("540p", "540p"),
        (5, "5"),
        (0, "0"),
        (True, "true"),
        (False, "false"),
        (None, ""),
        (7.5, "7.5"),
        (8.0, "8"),
        ([1, "a"], '[1,"a"]'),
    ],
)
def test_normalise_value(value: object, expected: str) -> None:
    assert normalise_value(value) == expected


def test_fingerprint_is_pinned() -> None:
    """A change here re-runs every job of every existing ledger: change it deliberately."""
    inputs = {"prompt": "p", "inputImageUrl": "https://x/y.jpg", "duration": "5"}
    value = fingerprint(MODEL, inputs, None)
    assert value == fingerprint(MODEL, dict(reversed(inputs.items())), None)
    assert value == "596bf9e579ee0b04d35bc04ca153d28da85168a67e7d187c7e87a65987a9ddad"
    assert value != fingerprint(MODEL, inputs, "0" * 64)
    assert value != fingerprint("Other/model", inputs, None)


def test_job_is_frozen_and_hashable() -> None:
    job = Job("a", 0, {"prompt": "p"}, None, "f" * 64, "m.yaml:3")
    with pytest.raises(dataclasses.FrozenInstanceError):
        job.id = "b"  # type: ignore[misc]
    assert hash(job) == hash(Job("a", 0, {"prompt": "other"}, None, "f" * 64, "m.yaml:3"))
    assert not hasattr(job, "__dict__")


# -- prices -------------------------------------------------------------------------------


def test_prices_come_from_the_shipped_definition() -> None:
    prices = read_definition(DEFINITION).prices
    table = {(dict(t.inputs)["quality"], dict(t.inputs)["duration"]): t.price for t in prices.tiers}
    assert table == {
        ("360p", "5"): 0.45, ("360p", "8"): 0.90, ("540p", "5"): 0.45, ("540p", "8"): 0.90,
        ("720p", "5"): 0.60, ("720p", "8"): 1.20, ("1080p", "5"): 1.20, ("1080p", "8"): 2.40,
    }  # fmt: skip
    assert prices.estimate({}).usd == 0.45  # the API's defaults: 540p, 5 s
    assert prices.estimate({"quality": "1080p", "duration": "8"}).usd == 2.40
    assert prices.estimate({"quality": "4k"}).basis == "typical"  # no tier: approximatelycost
    jobs = [Job(str(n), n, {"quality": "720p"}, None, "", "", estimate=0.6) for n in range(3)]
    unknown = Job("x", 3, {"quality": "4k"}, None, "", "", estimate=None)
    assert estimate_total([*jobs, unknown]) == 1.80
    assert estimate_job_cost(unknown) is None and unpriced([*jobs, unknown]) == 1


# -- the YAML loader ------------------------------------------------------------------------

_SCALARS = [
    "5", "05", "0x1f", "0o17", "0b101", "1_000", "1:30", "-7", "+3", "3.0", "1e3", "1.5e3",
    ".inf", "-.Inf", ".nan", "true", "True", "on", "Off", "yes", "NO", "y", "n", "~", "null",
    "Null", "", "2024-01-01", "2001-12-14t21:59:43.10-05:00", "2024-13-45", "abc", "<<", "=",
    "'quoted'", '"5"', "'true'", "720p", "a: b", "https://x/y.jpg",
    "0", "007", "123456789012345678901234567890", "\u0663", "\u00b9\u00b2",
]  # fmt: skip


@pytest.mark.parametrize("scalar", _SCALARS)
def test_scalars_resolve_like_safe_load(scalar: str) -> None:
    text = f"k: {scalar}\n" if scalar != "a: b" else "k: 'a: b'\n"
    try:
        expected = yaml.safe_load(text)["k"]
    except (ValueError, yaml.YAMLError):
        expected = scalar  # PyYAML crashes on 2024-13-45, << and =; the loader keeps the text
    result = load_yaml(text)
    assert not result.issues
    got = result.data["k"]
    if expected != expected:  # NaN
        assert got != got
    else:
        assert got == expected and type(got) is type(expected)


@settings(max_examples=300, deadline=None)
@given(
    st.recursive(
        st.one_of(st.text(max_size=20), st.integers(), st.booleans(), st.none()),
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(st.text(min_size=1, max_size=8), children, max_size=4),
        ),
        max_leaves=20,
    )
)
def test_round_trip_matches_safe_load(data: object) -> None:
    text = yaml.safe_dump({"root": data}, allow_unicode=True)
    result = load_yaml(text)
    assert not result.fatal and not result.issues
    assert result.data == yaml.safe_load(text)


def test_lines_are_recorded() -> None:
    result = load_yaml("a: 1\nlist:\n  - x\n  - y: 2\n    z: 3\n")
    root = result.data
    assert isinstance(root, YMap)
    assert root.key_lines == {"a": 1, "list": 2}
    items = root["list"]
    assert isinstance(items, YSeq)
    assert items.item_lines == [3, 4]
    assert items[1].key_lines == {"y": 4, "z": 5}


def test_keys_keep_their_text() -> None:
    root = load_yaml("on: 1\n5: 2\nnull: 3\n").data
    assert list(root) == ["on", "5", "null"]


def test_complex_keys_are_refused() -> None:
    result = load_yaml("? [a, b]\n: c\n")
    assert result.fatal and "mapping key" in result.issues[0].message


def test_pure_python_parser_gives_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    import batch_runner.manifest.yamlsafe as yamlsafe

    text = Path(__file__).resolve().parent.parent.joinpath("manifests", "sweep.yaml").read_text()
    fast = load_yaml(text)
    monkeypatch.setattr(yamlsafe, "_LoaderClass", yaml.SafeLoader)
    slow = load_yaml(text)
    assert fast.data == slow.data
    assert fast.data["defaults"].key_lines == slow.data["defaults"].key_lines
