"""The sandbox's model catalogue: ``/Tool/Detail``, ``/Tool/List``, and the records' content,
driven over loopback with raw aiohttp like ``test_sandbox.py``."""

from __future__ import annotations

import json
from typing import Any

import pytest
import test_sandbox
from test_sandbox import Factory, error_of

from batch_runner.sandbox import DEFAULT_SLUG, MODELS, PRICES_USD

make = test_sandbox.make  # the fixture: sandboxes with fast tasks and a raw client

SLUGS = sorted(MODELS)


def items_of(tool: dict[str, Any]) -> list[dict[str, Any]]:
    return [item for group in tool["parameters"] or () for item in group["items"]]


async def detail(api: Any, owner: str, project: str, **extra: Any) -> dict[str, Any]:
    status, body = await api.post(
        "/Tool/Detail", json={"slugowner": owner, "slugproject": project, **extra}
    )
    assert status == 200 and body["result"] is True and body["errors"] == [], body
    [tool] = body["tool"]
    return dict(tool)


async def test_detail_answers_the_record_of_every_model(make: Factory) -> None:
    _sb, api = await make()
    for slug in SLUGS:
        owner, project = slug.split("/")
        tool = await detail(api, owner, project)
        assert (tool["cleanslugowner"], tool["cleanslugproject"]) == (owner, project)
        for name in (
            "id",
            "title",
            "slugowner",
            "slugproject",
            "description",
            "cps",
            "approximatelycost",
            "image",
            "computingtime",
            "readme",
            "taskstat",
        ):
            assert name in tool, (slug, name)  # fmt: skip
        assert "sandbox" not in tool  # the emulator's own notes are never served
        assert isinstance(tool["categories"], list) and "tool" in tool["categories"]
        assert tool["inspire"] and all(isinstance(e, dict) for e in tool["inspire"])
        assert float(tool["cps"]) > 0 and float(tool["approximatelycost"]) > 0
        price = tool["dynamicprice"]
        assert price is None or isinstance(json.loads(price), list)  # JSON text by default
        for item in items_of(tool):
            assert item["id"] and item["type"] and "label" in item, item


async def test_detail_finds_raw_and_clean_slugs_case_insensitively(make: Factory) -> None:
    _sb, api = await make()
    by_clean = await detail(api, "wiro", "text-to-image-sdxl")
    assert by_clean["slugproject"] == "Text To Image SDXL"  # a raw slug can hold spaces
    assert (await detail(api, "WIRO", "text to image sdxl"))["id"] == by_clean["id"]
    assert (await detail(api, "pixverse", "IMAGE-TO-VIDEO-V5"))["id"] == "1421"
    status, body = await api.post("/Run/pixverse/IMAGE-TO-VIDEO-V5", data=test_sandbox.INPUTS)
    assert status == 200 and body["result"] is True  # /Run matches clean slugs the same way


async def test_detail_errors_unknown_missing_and_auth(make: Factory) -> None:
    _sb, api = await make()
    status, body = await api.post(
        "/Tool/Detail", json={"slugowner": "PixVerse", "slugproject": "no-such-model"}
    )
    assert status == 404 and error_of(body) == (1, "slug-owner-project-not-exist")
    status, body = await api.post("/Tool/Detail", json={"slugowner": "PixVerse"})
    assert status == 400 and error_of(body) == (0, "Request parameter [slugproject] required")
    status, body = await api.post("/Tool/Detail", headers={"x-api-key": "nope"}, json={})
    assert status == 401 and error_of(body)[1] == "Project authorization is not founded."
    status, body = await api.post("/Tool/List", headers={"x-api-key": "nope"}, json={})
    assert status == 401 and error_of(body)[1] == "Project authorization is not founded."
    status, body = await api.post("/Tool/List", json={"start": "first"})
    assert status == 400 and error_of(body) == (0, "Request parameter [start] must be a number.")


async def test_detail_errors_answer_http_200_in_the_200_style(make: Factory) -> None:
    _sb, api = await make(error_style="200")
    status, body = await api.post("/Tool/Detail", data={"slugowner": "x", "slugproject": "y"})
    assert status == 200 and error_of(body)[0] == 1


async def test_list_pages_searches_filters_and_summarises(make: Factory) -> None:
    sb, api = await make()

    async def listing(**query: Any) -> dict[str, Any]:
        status, body = await api.post("/Tool/List", json=query)
        assert status == 200 and body["result"] is True, body
        return dict(body)

    everything = await listing(limit="100")
    assert everything["total"] == len(MODELS) and len(everything["tool"]) == len(MODELS)
    assert everything["tool"][0]["cleanslugproject"] == DEFAULT_SLUG.split("/")[1]
    assert "parameters" in everything["tool"][0]  # without summary: whole records
    first, second = await listing(start="0", limit="3"), await listing(start="3", limit="3")
    ids = [t["id"] for t in first["tool"] + second["tool"]]
    assert first["total"] == len(MODELS) and len(ids) == 6 == len(set(ids))
    assert (await listing(start=str(len(MODELS))))["tool"] == []
    found = await listing(search="KLING")
    assert [t["cleanslugproject"] for t in found["tool"]] == ["kling-v3"]
    assert (await listing(search="gemini 2.5 flash"))["tool"][0]["id"] == "1562"  # description
    videos = await listing(categories=["text-to-video"], sort="id", order="ASC")
    assert [t["cleanslugproject"] for t in videos["tool"]] == ["veo3.1", "kling-v3"]
    both = await listing(categories=["text-to-video", "google"])  # every category must match
    assert [t["cleanslugproject"] for t in both["tool"]] == ["veo3.1"]
    assert (await listing(slugowner="Google", sort="title"))["total"] == 2
    summary = await listing(summary=True, search="nano")
    [tool] = summary["tool"]
    assert tool["dynamicprice"] and tool["categories"] and tool["taskstat"]
    assert not {"parameters", "inspire", "readme", "samples"} & set(tool)
    status, body = await api.post("/Tool/List", data={"categories": '["audio"]', "limit": "1"})
    assert status == 200 and body["total"] == 2 and len(body["tool"]) == 1
    assert sb.stats()["requests"]["Tool/List"] == 11


async def test_dynamicprice_as_a_list_when_configured(make: Factory) -> None:
    _sb, api = await make(dynamicprice_style="list")
    tool = await detail(api, "PixVerse", "image-to-video-v5")
    assert isinstance(tool["dynamicprice"], list) and len(tool["dynamicprice"]) == 8


async def test_records_use_both_spellings_and_the_open_list_of_types(make: Factory) -> None:
    _sb, api = await make()
    tools = {slug: await detail(api, *slug.split("/")) for slug in SLUGS}
    items = {slug: items_of(tool) for slug, tool in tools.items()}
    spelled_short = [s for s, its in items.items() if any("default" in i for i in its)]
    spelled_long = [s for s, its in items.items() if any("defaultvalue" in i for i in its)]
    assert "klingai/kling-v3" in spelled_short and "google/veo3.1" in spelled_long
    veo_options = next(i for i in items["google/veo3.1"] if i["id"] == "resolution")["options"]
    assert {"text", "value"} == set(veo_options[0])
    kling_options = next(i for i in items["klingai/kling-v3"] if i["id"] == "sound")["options"]
    assert [o["value"] for o in kling_options] == ["off", "on"] and "label" in kling_options[0]
    types = {i["type"] for its in items.values() for i in its}
    assert {"fileinput", "multifileinput", "combinefileinput", "selectwithcover",
            "checkbox", "float", "range", "number", "integer", "json"} <= types  # fmt: skip
    kling_groups = tools["klingai/kling-v3"]["parameters"]
    assert any(set(g) - {"title", "subtitle", "items"} for g in kling_groups)
    cover = next(i for i in items["wiro/text-to-image-sdxl"] if i["type"] == "selectwithcover")
    assert all(o["cover"].startswith("https://") for o in cover["options"])


async def test_pixverse_record_holds_the_price_list(make: Factory) -> None:
    _sb, api = await make()
    tool = await detail(api, "PixVerse", "image-to-video-v5")
    tiers = json.loads(tool["dynamicprice"])
    table = {(t["inputs"]["quality"], t["inputs"]["duration"]): t["price"] for t in tiers}
    assert table == PRICES_USD and PRICES_USD[("1080p", "8")] == 2.40
    assert {t["priceMethod"] for t in tiers} == {"cpr"}
    quality = next(i for i in items_of(tool) if i["id"] == "quality")
    assert [o["value"] for o in quality["options"]] == ["360p", "540p", "720p", "1080p"]


@pytest.mark.parametrize("slug", SLUGS)
async def test_every_inspire_example_is_valid_input(make: Factory, slug: str) -> None:
    sb, api = await make(queue_seconds=0, run_seconds=(0, 0))
    tool = await detail(api, *slug.split("/"))
    for example in tool["inspire"]:
        status, body = await api.post(f"/Run/{slug}", json=example)
        assert status == 200 and body["result"] is True, (example, body)
    assert sb.stats()["tasks_by_model"] == {slug: len(tool["inspire"])}
