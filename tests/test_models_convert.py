"""Tool records to model definitions (pure): every item type and both spellings, the derived
JSON Schema, price tiers, and hostile records refused with clear messages.

The fixtures in tests/data/tools/ are modelled on real Wiro records: Kling V3 and Nano
Banana in the SDK spelling (``default``/``min``/options ``{label, value}``), Veo 3.1, SDXL
and a music model in the docs/Go CLI spelling (``defaultvalue``/``minvalue``/options
``{text, value}``), an unknown item type (``json``), JSON numbers for values, a raw slug with
spaces, ``dynamicprice`` as text and as a list, and a record whose ``parameters`` is null.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from batch_runner.manifest.schemacheck import Checker, strict_validator
from batch_runner.models.definition import (
    MAX_TOOL_BYTES,
    ModelDefinition,
    definition_from_file,
    definition_from_tool,
)
from batch_runner.models.items import DefinitionProblem, InputItem

TOOLS = Path(__file__).resolve().parent / "data" / "tools"


def tool(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((TOOLS / f"{name}.json").read_text("utf-8"))
    return data


def defn(name: str) -> ModelDefinition:
    return definition_from_tool(tool(name))


def item(definition: ModelDefinition, name: str) -> InputItem:
    found = definition.item(name)
    assert found is not None, name
    return found


def accepts(definition: ModelDefinition, values: dict[str, Any]) -> list[str]:
    """The schema's messages for ``values`` (empty: accepted)."""
    relaxed = {k: v for k, v in definition.schema.items() if k != "required"}
    return [e.message for e in Checker(relaxed).errors(values)]


# -- both spellings ------------------------------------------------------------------------------


def test_sdk_spelling_default_min_max_step_and_label_options() -> None:
    kling = defn("klingai--kling-v3")
    assert kling.model == "klingai/kling-v3"
    mode = item(kling, "mode")
    assert (mode.kind, mode.default, mode.required) == ("choice", "pro", True)
    assert [(o.value, o.label) for o in mode.options] == [("pro", "Pro"), ("std", "Std")]
    scale = item(kling, "cfgScale")
    assert (scale.kind, scale.minimum, scale.maximum, scale.step) == ("number", 0, 1, 0.05)
    assert not scale.integer
    assert item(kling, "prompt").max_length == 2500


def test_docs_spelling_defaultvalue_minvalue_incrementby_and_text_options() -> None:
    veo = defn("google--veo3.1")
    resolution = item(veo, "resolution")
    assert resolution.default == "1080p"
    assert [(o.value, o.label) for o in resolution.options][2] == ("4k", "4K")
    seed = item(veo, "seed")
    assert (seed.type, seed.kind, seed.minimum, seed.maximum) == (
        "numeric",
        "number",
        0,
        4294967295,
    )
    assert seed.integer and seed.default == ""
    assert item(veo, "prompt").description == "What to film"  # "note" read as description


def test_json_numbers_are_normalised_and_clean_slugs_win() -> None:
    sdxl = defn("wiro--sdxl")
    assert sdxl.model == "wiro/text-to-image-sdxl"  # the raw slug has spaces
    assert item(sdxl, "samples").default == "1" and item(sdxl, "samples").maximum == 4
    assert item(sdxl, "width").default == "1024"
    nano = defn("google--nano-banana")
    assert item(nano, "temperature").default == "1" and item(nano, "temperature").step == 0.1


# -- each type and how it maps ------------------------------------------------------------------

TYPE_CASES = [
    # (fixture, input, type, kind, accepted values, refused values)
    ("klingai--kling-v3", "prompt", "textarea", "text", ["a cat", 5, None], [["x"], "x" * 2501]),
    ("wiro--sdxl", "seed", "text", "text", ["42", 42, ""], [{"a": 1}]),
    ("klingai--kling-v3", "mode", "select", "choice", ["pro", "std"], ["max", "Pro", 1]),
    ("wiro--sdxl", "selectedModel", "selectwithcover", "choice", ["", "juggernaut-xl-v9"], ["x"]),
    ("google--veo3.1", "generateAudio", "checkbox", "choice", [True, "false"], ["yes", 1]),
    ("wiro--sdxl", "samples", "number", "number", [1, "4", ""], [5, 0, "2.5", 1.5, "x"]),
    ("google--veo3.1", "seed", "numeric", "number", [0, "4294967295"], [-1, "abc"]),
    ("wiro--sdxl", "steps", "integer", "number", [1, 100, "50"], [101, 2.5]),
    ("klingai--kling-v3", "cfgScale", "float", "number", [0.5, "0.25", 1, 0], [1.5, -0.1, "a"]),
    ("wiro--sdxl", "width", "range", "number", [256, "2048", 512], [100, 4096]),
    ("klingai--kling-v3", "inputImage", "fileinput", "file", ["a.png", "https://x/a.png"], [[]]),
    ("google--veo3.1", "referenceImages", "multifileinput", "files",
     ["a.png", ["a.png", "https://x/b.png"]], [["a", "b", "c", "d"], []]),
    ("google--nano-banana", "inputImage", "combinefileinput", "combine",
     [["a.png", "https://x/b.png"], "a.png"], [["a", "b", "c", "d"]]),
    ("klingai--kling-v3", "multiPrompt", "json", "text", ['[{"prompt": "a"}]', {"a": 1}, [1]], []),
]  # fmt: skip


@pytest.mark.parametrize(("fixture", "name", "type_", "kind", "good", "bad"), TYPE_CASES)
def test_each_item_type_maps_to_a_kind_and_a_schema(
    fixture: str, name: str, type_: str, kind: str, good: list[Any], bad: list[Any]
) -> None:
    definition = defn(fixture)
    found = item(definition, name)
    assert (found.type, found.kind) == (type_, kind)
    strict_validator().check_schema(definition.schema)
    for value in good:
        assert accepts(definition, {name: value}) == [], (name, value)
    for value in bad:
        assert accepts(definition, {name: value}), (name, value)


def test_values_bigger_than_bounds_as_text_are_refused_by_the_loader_bounds() -> None:
    from batch_runner.manifest.spec import spec_for

    spec = spec_for(defn("klingai--kling-v3"))
    assert spec.input_problems({"cfgScale": "1.5"}) == [
        ("cfgScale", "'1.5' is out of range: expected 0 to 1")
    ]
    assert spec.input_problems({"cfgScale": "0.75"}) == []


def test_on_off_choices_take_yaml_booleans() -> None:
    from batch_runner.manifest.spec import spec_for

    spec = spec_for(defn("klingai--kling-v3"))
    assert spec.input_problems({"sound": True}) == []
    assert spec.normalise("sound", True) == "on" and spec.normalise("sound", False) == "off"
    assert spec.normalise("mode", "std") == "std"


def test_file_inputs_get_their_url_spelling_and_the_image_shorthand() -> None:
    veo = defn("google--veo3.1")
    props = veo.schema["properties"]
    assert props["inputImageUrl"]["x-file-alias"] == "inputImage"
    assert props["referenceImagesUrl"]["x-file-alias"] == "referenceImages"
    assert veo.schema["x-image-input"] == "inputImage"
    assert accepts(veo, {"inputImageUrl": "castle.png"})  # the Url spelling takes URLs only
    assert accepts(veo, {"referenceImagesUrl": "https://a/1.png,https://a/2.png"}) == []
    nano = defn("google--nano-banana")
    assert "inputImageUrl" not in nano.schema["properties"]  # combinefileinput: X itself
    assert item(nano, "inputImage").url_field == "inputImage"
    assert item(defn("wiro--music"), "voiceSample").accepts == "audio"
    assert item(veo, "inputImageLast").accepts == "image"


def test_required_inputs_with_a_default_need_not_be_written() -> None:
    kling = defn("klingai--kling-v3")
    assert kling.schema["required"] == ["inputImage"]  # mode, duration, sound have defaults


def test_every_model_takes_callback_url() -> None:
    assert "callbackUrl" in defn("google--veo3.1").schema["properties"]


def test_an_unknown_type_is_text_with_a_warning() -> None:
    kling = defn("klingai--kling-v3")
    multi = item(kling, "multiPrompt")
    assert (multi.kind, multi.known) == ("text", False)
    assert any("'multiPrompt' has type 'json'" in w for w in kling.warnings)


def test_null_parameters_is_a_model_without_inputs() -> None:
    chat = defn("wiro--llm-chat")
    assert chat.items == () and chat.model == "wiro/llm-chat"
    assert list(chat.schema["properties"]) == ["callbackUrl"]
    assert chat.prices.estimate({}).usd is None  # no tiers, no typical cost: unknown


# -- prices ------------------------------------------------------------------------------------


def test_prices_from_tiers_with_defaults_and_most_specific_match() -> None:
    kling = defn("klingai--kling-v3").prices
    assert kling.estimate({"mode": "std", "duration": "5", "sound": "off"}).usd == 0.42
    assert kling.estimate({"mode": "std", "duration": "5", "sound": "on"}).usd == 0.63
    assert kling.estimate({}).usd == 0.56  # the defaults: pro, 5, off
    assert kling.estimate({"duration": "10"}).usd == 1.12  # a tier over two inputs
    typical = kling.estimate({"duration": "15"})
    assert (typical.usd, typical.basis) == (1.12, "typical")  # no tier: approximatelycost
    assert kling.axes == ("mode", "duration", "sound")


def test_per_second_of_video_and_file_count_tiers() -> None:
    veo = defn("google--veo3.1").prices
    assert veo.estimate({}).usd == pytest.approx(0.3 * 8)  # 1080p, durationSeconds 8
    assert veo.estimate({"resolution": "720p", "durationSeconds": "4"}).usd == 0.8
    two_refs = veo.estimate({"resolution": "720p"}, {"referenceImages": 2})
    assert two_refs.usd == 2.5 and two_refs.basis == "tier"


def test_per_output_prices_count_samples_and_list_form_dynamicprice() -> None:
    assert defn("wiro--sdxl").prices.estimate({"samples": "3"}).usd == pytest.approx(0.012)
    assert defn("google--nano-banana").prices.estimate({}).usd == 0.039  # dynamicprice list


def test_no_dynamic_price_falls_back_to_the_typical_cost() -> None:
    music = defn("wiro--music").prices.estimate({"prompt": "a"})
    assert (music.usd, music.basis) == (0.014625, "typical")


def test_broken_dynamicprice_is_a_warning_not_an_error() -> None:
    record = tool("klingai--kling-v3")
    record["dynamicprice"] = "[{not json"
    broken = definition_from_tool(record)
    assert broken.tiers == () and any(
        "dynamicprice is not valid JSON" in w for w in broken.warnings
    )
    record["dynamicprice"] = '[{"inputs": {}, "price": "-1"}, {"inputs": "x", "price": 1}, 7]'
    odd = definition_from_tool(record)
    assert odd.tiers == () and len(odd.warnings) >= 3


def with_items(record: dict[str, Any], *items: Any) -> dict[str, Any]:
    return {**record, "parameters": [{"title": "G", "items": list(items)}]}


# -- hostile records -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda t: "not a record", "the tool record is not an object"),
        (lambda t: {**t, "parameters": "items"}, "'parameters' is text that is not JSON"),
        (lambda t: {**t, "parameters": 5}, "'parameters' must be a list of groups"),
        (lambda t: {**t, "parameters": [7]}, "parameter group #1 is not an object"),
        (lambda t: {**t, "parameters": [{"items": {"id": "x"}}]}, "'items' is not a list"),
        (
            lambda t: with_items(t, {"id": "../etc", "type": "text"}),
            "has the id '../etc': an input name must be",
        ),
        (
            lambda t: with_items(t, {"id": "a", "type": "text"}, {"id": "a", "type": "text"}),
            "input 'a' is defined twice",
        ),
        (lambda t: {**t, "cleanslugowner": "a/b", "slugowner": ""}, "not owner/name"),
        (lambda t: {**t, "readme": "x" * (MAX_TOOL_BYTES + 1)}, "bytes (at most"),
        (
            lambda t: with_items(t, *({"id": f"i{n}", "type": "text"} for n in range(501))),
            "more than 500 inputs",
        ),
        (
            lambda t: with_items(t, {"id": "s", "type": "select", "options": "a,b"}),
            "options must be a list",
        ),
    ],
)  # fmt: skip
def test_hostile_records_are_refused_with_the_part_at_fault(change: Any, expected: str) -> None:
    with pytest.raises(DefinitionProblem, match=None) as caught:
        definition_from_tool(change(tool("klingai--kling-v3")))
    assert expected in str(caught.value)


def test_odd_values_inside_items_never_crash() -> None:
    record = tool("klingai--kling-v3")
    record["parameters"] = [
        {
            "title": None,
            "items": [
                {"id": "a", "type": None},
                {"id": "b", "type": "number", "min": "low", "max": float("inf"), "step": []},
                {
                    "id": "c",
                    "type": "select",
                    "options": [{"label": "no value"}, 5, {"value": [1]}],
                },
                {"id": "d", "type": "text", "default": {"x": 1}, "label": ["l"], "required": "yes"},
                {"id": "e", "type": "TEXTAREA", "maxlength": "-4"},
            ],
        }
    ]
    odd = definition_from_tool(record)
    assert [i.kind for i in odd.items] == ["text", "number", "choice", "text", "text"]
    assert item(odd, "b").minimum is None and item(odd, "b").maximum is None
    assert item(odd, "c").options == ()
    assert item(odd, "d").required and item(odd, "d").default is None
    assert item(odd, "e").max_length is None
    assert len(odd.warnings) >= 4
    strict_validator().check_schema(odd.schema)


def test_a_record_for_another_model_is_refused() -> None:
    with pytest.raises(DefinitionProblem, match="answered about 'klingai/kling-v3'"):
        definition_from_tool(tool("klingai--kling-v3"), requested="google/veo3.1")


def test_definition_files_round_trip_and_bad_files_are_named() -> None:
    kling = defn("klingai--kling-v3")
    again = definition_from_file(json.loads(json.dumps(kling.to_file())), "x.json")
    assert again.items == kling.items and again.schema == kling.schema
    assert again.digest() == kling.digest()
    with pytest.raises(DefinitionProblem, match="not a model definition"):
        definition_from_file({"tool": {}}, "x.json")
    with pytest.raises(DefinitionProblem, match="version 2"):
        definition_from_file({**kling.to_file(), "version": 2}, "x.json")
    with pytest.raises(DefinitionProblem, match="not a valid JSON Schema"):
        definition_from_file({**kling.to_file(), "schema": {"type": 5}}, "x.json")


def test_an_input_named_like_a_manifest_key_is_left_to_the_service() -> None:
    record = with_items(tool("klingai--kling-v3"), {"id": "model", "type": "text"},
                        {"id": "prompt", "type": "text"})  # fmt: skip
    odd = definition_from_tool(record)
    assert "model" not in odd.schema["properties"]
    assert any("'model' has the name of a manifest key" in w for w in odd.warnings)


def test_nested_json_as_text_is_read() -> None:
    record = tool("klingai--kling-v3")
    for group in record["parameters"]:
        for entry in group["items"]:
            if "options" in entry:
                entry["options"] = json.dumps(entry["options"])
    record["parameters"] = json.dumps(record["parameters"])
    assert item(definition_from_tool(record), "mode").choices == ("pro", "std")
    assert [i.name for i in definition_from_tool(record).items] == [
        i.name for i in defn("klingai--kling-v3").items
    ]
    record["parameters"] = "{not json"
    with pytest.raises(DefinitionProblem, match="'parameters' is text that is not JSON"):
        definition_from_tool(record)
