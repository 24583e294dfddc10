"""The catalogue's models at ``/Run``: checks from each record, file inputs in every form,
real PNG/WAV/MP4 outputs, and prices from ``dynamicprice`` (raw aiohttp over loopback)."""

from __future__ import annotations

import hashlib
import io
import json
import struct
import wave
import zlib
from typing import Any

import aiohttp
import pytest
import test_sandbox
from test_sandbox import Api, Factory, error_of

from batch_runner.sandbox import FaultConfig
from batch_runner.sandbox.media import sample_bytes
from batch_runner.sandbox.pricing import Pricing, parse_tiers

make = test_sandbox.make  # the fixture: sandboxes with fast tasks and a raw client

KLING, VEO, SDXL = "klingai/kling-v3", "google/veo3.1", "wiro/text-to-image-sdxl"
NANO, KOKORO, MUSIC = "google/nano-banana", "wiro/kokoro_tts", "wiro/music_gen"
IMAGE = "https://example.com/a.png"
BASE: dict[str, dict[str, Any]] = {
    KLING: {"inputImageUrl": IMAGE, "prompt": "a boat"},
    VEO: {"prompt": "a storm"},
    SDXL: {"prompt": "a fox"},
    NANO: {"prompt": "a banana"},
    KOKORO: {"prompt": "Hello there."},
    MUSIC: {"prompt": "lo-fi"},
}
PNG_BYTES = b"\x89PNG\r\n\x1a\n fake image"


async def run(api: Api, slug: str, **kwargs: Any) -> tuple[int, Any]:
    return await api.post(f"/Run/{slug}", **kwargs)


async def finished(api: Api, slug: str, **inputs: Any) -> dict[str, Any]:
    status, body = await run(api, slug, json={**BASE[slug], **inputs})
    assert status == 200 and body["result"] is True, body
    return await api.wait(body["taskid"])


def parameters_of(task: dict[str, Any]) -> dict[str, str]:
    parameters = task["parameters"]
    return dict(json.loads(parameters) if isinstance(parameters, str) else parameters)


async def fetch(api: Api, url: str) -> tuple[str, bytes]:
    async with api.session.get(url) as r:
        assert r.status == 200, url
        return r.headers["Content-Type"], await r.read()


def decode_png(data: bytes) -> tuple[int, int, dict[str, bytes]]:
    """(width, height, text chunks) of a PNG, checking every CRC and the pixel stream."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, chunks, idat = 8, {}, b""
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        payload = data[position + 8 : position + 8 + length]
        (crc,) = struct.unpack(">I", data[position + 8 + length : position + 12 + length])
        assert crc == zlib.crc32(kind + payload), kind
        if kind == b"IDAT":
            idat += payload
        chunks[kind.decode()] = payload
        position += 12 + length
    assert next(iter(chunks)) == "IHDR" and list(chunks)[-1] == "IEND"
    width, height, depth, colour = struct.unpack(">IIBB", chunks["IHDR"][:10])
    assert (depth, colour) == (8, 2)
    pixels = zlib.decompress(idat)
    assert len(pixels) == height * (1 + 3 * width)
    assert all(pixels[row * (1 + 3 * width)] == 0 for row in range(height))  # filter bytes
    return width, height, chunks


# -- checks --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("slug", "inputs", "message"),
    [
        (KLING, {"inputImageUrl": ""}, "Request files [inputImage] required"),
        (
            KLING,
            {"inputImageUrl": "ftp://x/a.png"},
            "Request parameter [inputImageUrl] must be an http(s) URL.",
        ),
        (
            KLING,
            {"inputImageUrl": "", "inputImage": "a.png"},
            "Request parameter [inputImage] must be an http(s) URL.",
        ),
        (KLING, {"sound": "maybe"}, "Request parameter [sound] must be one of 'off', 'on'."),
        (KLING, {"mode": ""}, "Request parameter [mode] required"),
        (KLING, {"scale": "1.5"}, "Request parameter [scale] must be a number from 0 to 1."),
        (KLING, {"scale": "1_0"}, "Request parameter [scale] must be a number from 0 to 1."),
        (
            KLING,
            {"prompt": "x" * 2501},
            "Request parameter [prompt] must be at most 2500 characters.",
        ),
        (VEO, {"prompt": None}, "Request parameter [prompt] required"),
        (VEO, {"seed": "1.5"}, "Request parameter [seed] must be an integer from 0 to 4294967295."),
        (
            VEO,
            {"resolution": "8k"},
            "Request parameter [resolution] must be one of '720p', '1080p', '4k'.",
        ),
        (
            VEO,
            {"inputImage3Url": ",".join([IMAGE] * 4)},
            "Request parameter [inputImage3] must be at most 3 files.",
        ),
        (SDXL, {"samples": "5"}, "Request parameter [samples] must be an integer from 1 to 4."),
        (SDXL, {"samples": 2.5}, "Request parameter [samples] must be an integer from 1 to 4."),
        (SDXL, {"width": "100"}, "Request parameter [width] must be an integer from 256 to 2048."),
        (SDXL, {"upscale": "yes"}, "Request parameter [upscale] must be one of 'false', 'true'."),
        (
            SDXL,
            {"stepsRefiner": "3.5"},
            "Request parameter [stepsRefiner] must be an integer from 1 to 100.",
        ),
        (SDXL, {"scale": "nan"}, "Request parameter [scale] must be a number from 0 to 20."),
        (
            SDXL,
            {"selectedModel": "sd15"},
            "Request parameter [selectedModel] must be one of '', 'juggernaut-xl-v9'",
        ),
        (
            NANO,
            {"inputImage": [IMAGE] * 4},
            "Request parameter [inputImage] must be at most 3 files.",
        ),
        (
            NANO,
            {"temperature": "-0.1"},
            "Request parameter [temperature] must be a number from 0 to 2.",
        ),
        (KOKORO, {"speed": "3"}, "Request parameter [speed] must be a number from 0.5 to 2."),
        (KOKORO, {"voice": "nobody"}, "Request parameter [voice] must be one of 'am_adam'"),
        (
            MUSIC,
            {"generationLength": "31"},
            "Request parameter [generationLength] must be an integer from 1 to 30.",
        ),
    ],
)
async def test_each_record_drives_the_checks(
    make: Factory, slug: str, inputs: dict[str, Any], message: str
) -> None:
    sb, api = await make()
    status, body = await run(api, slug, json={**BASE[slug], **inputs})
    code, text = error_of(body)
    assert status == 400 and code == 0 and text.startswith(message), text
    assert sb.stats()["tasks_created"] == 0


async def test_defaults_numbers_and_booleans_in_the_api_string_form(make: Factory) -> None:
    sb, api = await make()
    inputs = {"samples": 2, "scale": 7, "upscale": True, "steps": "050", "seed": ""}
    assert (await run(api, SDXL, json={**BASE[SDXL], **inputs}))[0] == 200
    parameters = sb.tasks[0].parameters
    assert parameters["samples"] == "2" and parameters["scale"] == "7"
    assert parameters["upscale"] == "true" and parameters["steps"] == "50"
    assert parameters["seed"] == "" and parameters["width"] == "1024"  # a JSON-number default
    assert parameters["refiner"] == "--only_base_model" and parameters["callbackUrl"] == ""
    assert parameters["selectedModel"] == "" and "unknown" not in parameters
    assert (await run(api, KLING, data={**BASE[KLING], "unknown": "x"}))[0] == 200
    kling = sb.tasks[1].parameters
    assert kling["mode"] == "pro" and kling["duration"] == "10" and kling["sound"] == "off"
    assert kling["inputImage"] == IMAGE and kling["inputImage2"] == ""
    assert "inputImageUrl" not in kling and "unknown" not in kling


# -- file inputs ---------------------------------------------------------------------------


async def test_fileinput_upload_url_field_and_url_in_the_input_itself(make: Factory) -> None:
    sb, api = await make()
    form = aiohttp.FormData()
    form.add_field("inputImage", PNG_BYTES, filename="first frame.png", content_type="image/png")
    form.add_field("inputImageUrl", "")
    form.add_field("inputImage2Url", "https://example.com/last.jpg")
    form.add_field("prompt", "a boat")
    assert (await run(api, KLING, data=form))[0] == 200
    assert (await run(api, KLING, json={"inputImage": IMAGE, "inputImage2": IMAGE}))[0] == 200
    assert (await run(api, KLING, data={"inputImageUrl": IMAGE}))[0] == 200
    uploaded, direct, by_url = sb.task_records()
    assert uploaded["request_form"] == "multipart"
    [first] = uploaded["file_inputs"]["inputImage"]
    assert (first["field"], first["form"], first["filename"]) == (
        "inputImage", "upload", "first frame.png"
    )  # fmt: skip
    assert first["url"].startswith(sb.origin + "/files/") and "/inputImage-" in first["url"]
    assert uploaded["parameters"]["inputImage"] == first["url"]
    assert await fetch(api, first["url"]) == ("image/png", PNG_BYTES)
    [last] = uploaded["file_inputs"]["inputImage2"]
    assert (last["field"], last["form"]) == ("inputImage2Url", "url")
    assert direct["request_form"] == "json"
    assert [s["field"] for s in direct["file_inputs"]["inputImage"]] == ["inputImage"]
    assert by_url["request_form"] == "urlencoded"
    assert by_url["file_inputs"] == {"inputImage": [
        {"field": "inputImageUrl", "form": "url", "url": IMAGE}
    ]}  # fmt: skip
    assert sb.stats()["tasks_created"] == 3


async def test_multifileinput_uploads_and_comma_separated_urls(make: Factory) -> None:
    sb, api = await make()
    form = aiohttp.FormData()
    form.add_field("inputImage3", PNG_BYTES, filename="ref.png", content_type="image/png")
    form.add_field("inputImage3Url", "https://example.com/r1.jpg, https://example.com/r2.jpg")
    form.add_field("prompt", "the same shoe")
    assert (await run(api, VEO, data=form))[0] == 200
    as_list = {"prompt": "p", "inputImage3Url": ["https://example.com/r3.jpg"]}
    assert (await run(api, VEO, json=as_list))[0] == 200
    mixed, listed = sb.task_records()
    sources = mixed["file_inputs"]["inputImage3"]
    assert [(s["field"], s["form"]) for s in sources] == [
        ("inputImage3", "upload"), ("inputImage3Url", "url_list"), ("inputImage3Url", "url_list")
    ]  # fmt: skip
    assert mixed["parameters"]["inputImage3"] == ",".join(s["url"] for s in sources)
    assert [s["form"] for s in listed["file_inputs"]["inputImage3"]] == ["json_list"]


async def test_combinefileinput_takes_files_and_urls_in_the_input_itself(make: Factory) -> None:
    sb, api = await make()
    two = [IMAGE, "https://example.com/b.png"]
    assert (await run(api, NANO, json={"prompt": "combine", "inputImage": two}))[0] == 200
    form = aiohttp.FormData()
    form.add_field("inputImage", PNG_BYTES, filename="a.png", content_type="image/png")
    form.add_field("inputImage", "https://example.com/c.png")
    form.add_field("inputImage", json.dumps(["https://example.com/d.png"]))
    form.add_field("prompt", "combine")
    assert (await run(api, NANO, data=form))[0] == 200
    listed, repeated = sb.task_records()
    assert [s["form"] for s in listed["file_inputs"]["inputImage"]] == ["json_list"] * 2
    assert json.loads(listed["parameters"]["inputImage"]) == two
    forms = [s["form"] for s in repeated["file_inputs"]["inputImage"]]
    assert forms == ["upload", "url", "json_list"]
    assert len(json.loads(repeated["parameters"]["inputImage"])) == 3


@pytest.mark.filterwarnings("ignore:Sending a large body directly:ResourceWarning")
async def test_files_sent_to_run_are_checked_like_uploads(make: Factory) -> None:
    sb, api = await make(max_upload_bytes=1000)
    for filename, data, expected in (
        ("notes.txt", b"hello", "File type is not allowed."),
        ("huge.png", b"x" * 1001, "File size exceeds the limit of 0 MB."),
        ("empty.png", b"", "Uploaded file is empty."),
    ):
        form = aiohttp.FormData()
        form.add_field("inputImage", data, filename=filename, content_type="image/png")
        status, body = await run(api, KLING, data=form)
        assert status == 400 and error_of(body)[1].startswith(expected), body
    form = aiohttp.FormData()
    form.add_field("prompt", "x" * (4 * 2**20 + 1))  # a text field: capped like a JSON body
    assert (await run(api, KLING, data=form))[0] == 413
    assert sb.stats()["tasks_created"] == 0


async def test_file_upload_takes_audio_and_video_too(make: Factory) -> None:
    _sb, api = await make()
    kinds = {"voice.wav": "audio/wav", "clip.mp4": "video/mp4", "song.mp3": "audio/mpeg"}
    for filename, kind in {**kinds, "take.mov": "video/quicktime"}.items():
        form = aiohttp.FormData()
        form.add_field("file", b"data", filename=filename)
        status, body = await api.post("/File/Upload", data=form)
        assert status == 200 and body["list"][0]["contenttype"] == kind, body
        assert (await fetch(api, body["list"][0]["url"]))[0] == kind


# -- outputs -------------------------------------------------------------------------------


async def test_several_pngs_per_task_each_unique_and_decodable(make: Factory) -> None:
    sb, api = await make(queue_seconds=0, run_seconds=(0, 0))
    task = await finished(api, SDXL, samples="3", width="1344", height="768")
    records = sb.task_records()[0]["outputs"]
    assert [o["name"] for o in task["outputs"]] == ["0.png", "1.png", "2.png"]
    digests = set()
    for output, record in zip(task["outputs"], records, strict=True):
        assert output["contenttype"] == "image/png"
        kind, data = await fetch(api, output["url"])
        assert kind == "image/png" and len(data) == int(output["size"])
        assert hashlib.sha256(data).hexdigest() == record["sha256"]
        digests.add(record["sha256"])
        width, height, chunks = decode_png(data)
        assert (width, height) == (96, 55)  # the asked proportions, drawn small
        assert task["id"].encode() in chunks["tEXt"]
    assert len(digests) == 3
    assert int(task["size"]) == sum(int(o["size"]) for o in task["outputs"])
    missing = task["outputs"][0]["url"].rsplit("/", 1)[0] + "/7.png"
    async with api.session.get(missing) as r:
        assert r.status == 404
    other = await finished(api, SDXL, samples="1")
    _, again = await fetch(api, other["outputs"][0]["url"])
    assert hashlib.sha256(again).hexdigest() not in digests  # unique per task too


async def test_audio_is_a_playable_wav_and_video_the_sample_mp4(make: Factory) -> None:
    _sb, api = await make(queue_seconds=0, run_seconds=(0, 0))
    speech = await finished(api, KOKORO)
    [output] = speech["outputs"]
    assert output["name"] == "0.wav" and output["contenttype"] == "audio/wav"
    kind, data = await fetch(api, output["url"])
    assert kind == "audio/wav" and data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    assert struct.unpack("<I", data[4:8])[0] == len(data) - 8
    with wave.open(io.BytesIO(data)) as sound:
        assert (sound.getnchannels(), sound.getsampwidth(), sound.getframerate()) == (1, 2, 16000)
        frames = sound.readframes(sound.getnframes())
        assert len(frames) == 2 * sound.getnframes() == 8000 and frames.strip(b"\x00")
    assert speech["id"].encode() in data[-200:]  # the per-task LIST/INFO note
    other = await finished(api, MUSIC)
    assert (await fetch(api, other["outputs"][0]["url"]))[1] != data
    video = await finished(api, VEO)
    kind, data = await fetch(api, video["outputs"][0]["url"])
    assert kind == "video/mp4" and data.startswith(sample_bytes()) and b"free" in data[-120:]
    async with api.session.get(video["outputs"][0]["url"], headers={"Range": "bytes=0-7"}) as r:
        assert r.status == 206 and await r.read() == data[:8]


# -- prices --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("slug", "inputs", "cost"),
    [
        (KLING, {"mode": "pro", "duration": "15", "sound": "on"}, 2.52),
        (KLING, {"mode": "std", "duration": "5", "sound": "off"}, 0.42),
        (VEO, {"resolution": "1080p", "generateAudio": "true", "durationSeconds": "8"}, 3.2),
        (VEO, {"resolution": "720p", "generateAudio": "false"}, 0.8),  # 4 s x $0.20
        (SDXL, {"samples": "3"}, 0.012),  # per output
        (NANO, {}, 0.039),
        (KOKORO, {"prompt": "x" * 50}, 0.001),  # per character
    ],
)
async def test_charges_follow_the_dynamicprice_tiers(
    make: Factory, slug: str, inputs: dict[str, Any], cost: float
) -> None:
    sb, api = await make(queue_seconds=0, run_seconds=(0, 0))
    task = await finished(api, slug, **inputs)
    assert task["pexit"] == "0" and float(task["totalcost"]) == pytest.approx(cost)
    assert sb.stats()["money_charged_usd"] == pytest.approx(cost)
    assert sb.task_records()[0]["charged_usd"] == pytest.approx(cost)


async def test_no_dynamic_price_charges_elapsed_seconds_times_cps(make: Factory) -> None:
    sb, api = await make(queue_seconds=0.05, run_seconds=(0.3, 0.3))
    task = await finished(api, MUSIC)
    elapsed = float(task["elapsedseconds"])
    assert elapsed >= 0.3
    assert float(task["totalcost"]) == pytest.approx(elapsed * 0.000585, abs=1e-6)
    assert float(task["cps"]) == pytest.approx(0.000585, rel=0.01)
    sb.set_faults(FaultConfig(generation_failure=1.0))
    failed = await finished(api, SDXL, samples="4")
    assert failed["pexit"] == "1" and failed["outputs"] == [] and float(failed["totalcost"]) == 0


async def test_quotes_reserve_money_for_the_code_97_check(make: Factory) -> None:
    sb, api = await make(balance_usd=0.01, concurrency_limit=10, queue_seconds=5)
    status, body = await run(api, SDXL, json={**BASE[SDXL], "samples": "4"})  # 4 x $0.004
    assert status == 400 and error_of(body) == (97, "Insufficient balance")
    assert (await run(api, SDXL, json={**BASE[SDXL], "samples": "2"}))[0] == 200
    status, body = await run(api, MUSIC, json=BASE[MUSIC])  # approximatelycost $0.0146
    assert error_of(body)[0] == 97
    assert sb.stats()["reserved_usd"] == pytest.approx(0.008)


def test_tier_matching_quantity_specificity_and_methods() -> None:
    """The pricing rules on tiers no catalogue record uses (QUANTITY, cps, unknown methods)."""
    tiers = parse_tiers(
        json.dumps(
            [
                {"inputs": {}, "price": 0.10, "priceMethod": "cpr"},
                {"inputs": {"quality": "hd"}, "price": 0.20, "priceMethod": "cpr"},
                {"inputs": {"quality": "hd", "refs": "QUANTITY:2"}, "price": 0.30},
                {"inputs": {"quality": "slow"}, "price": 0.01, "priceMethod": "cps"},
                {"inputs": {"quality": "tokens"}, "price": 0.05, "priceMethod": "cpt"},
            ]
        )
    )
    pricing = Pricing(tiers, cps=0.001, approximate=0.5)
    assert pricing.charge({"quality": "sd"}, {}, 1, 10.0) == 100_000  # the flat tier
    assert pricing.charge({"quality": "hd"}, {"refs": 1}, 1, 10.0) == 200_000
    assert pricing.charge({"quality": "hd"}, {"refs": 2}, 1, 10.0) == 300_000  # most specific
    assert pricing.quote({"quality": "hd"}, {"refs": 2}, 1) == 300_000
    assert pricing.charge({"quality": "slow"}, {}, 1, 12.5) == 125_000  # per second
    assert pricing.quote({"quality": "slow"}, {}, 1) == 500_000  # approximatelycost
    assert pricing.charge({"quality": "tokens"}, {}, 3, 1.0) == 50_000  # once per run
    flat = Pricing(parse_tiers(None), cps=0.000585, approximate=0.01)
    assert flat.charge({}, {}, 1, 6.0) == 3_510  # the API page's 6 s x 0.000585
    with pytest.raises(ValueError, match="bad price"):
        parse_tiers('[{"inputs": {}, "price": -1}]')
