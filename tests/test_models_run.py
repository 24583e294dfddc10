"""Any model, end to end: the real client against the real sandbox over loopback, definitions
fetched from its /Tool/Detail, local files uploaded for every kind of file input, images and
audio saved and verified, a model matrix compared in one gallery, prices from tiers, and the
old PixVerse folders resumed without a single new task."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import struct
import wave
import zlib
from pathlib import Path
from typing import Any

import pytest
from clihelp import REPO, check_outputs_match_service, cli_env, load_ledger, run_cli

import batch_runner
from batch_runner.engine.api import load_for_run
from batch_runner.errors import UsageError
from batch_runner.sandbox import Sandbox, SandboxConfig

FAST = SandboxConfig(queue_seconds=0.02, run_seconds=(0.05, 0.15))
IMAGES = REPO / "manifests" / "images"
URL = "https://cdn.example.com/ref.png"


def client_for(sb: Sandbox) -> batch_runner.WiroClient:
    return batch_runner.WiroClient(
        sb.api_key, sb.api_secret, base_url=sb.base_url, socket_url=sb.socket_url
    )


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height of a PNG whose chunks check out (CRCs) and whose pixels inflate."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, size = 8, b"", (0, 0)
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + body) & 0xFFFFFFFF == crc
        if kind == b"IHDR":
            size = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    assert zlib.decompress(idat)
    return size


MIX = f"""
jobs:
  - id: pics
    model: wiro/text-to-image-sdxl
    prompt: a red fox in the snow
    samples: 3
  - id: voice
    model: wiro/kokoro_tts
    prompt: Hello from the batch.
    voice: af_bella
  - id: combine
    model: google/nano-banana
    prompt: put the lighthouse next to the castle
    inputImage: [images/castle.png, {URL}, images/lighthouse.png]
  - id: refs
    model: google/veo3.1
    prompt: the castle three ways
    inputImage3: [images/castle.png, images/lighthouse.png]
    resolution: 720p
  - id: frames
    model: klingai/kling-v3
    prompt: from the castle to the lighthouse
    image: images/castle.png
    inputImage2: images/lighthouse.png
    sound: on
    multiPrompt: {{shots: 2}}
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    shutil.copytree(IMAGES, tmp_path / "images")
    (tmp_path / "mix.yaml").write_text(MIX, "utf-8")
    return tmp_path


async def test_every_kind_of_model_and_file_input_end_to_end(folder: Path) -> None:
    out = folder / "out"
    async with Sandbox(FAST) as sb, client_for(sb) as client:
        notes: list[str] = []
        manifest = await load_for_run(folder / "mix.yaml", sandbox=sb, on_note=notes.append)
        assert sum("fetched the definition of" in n for n in notes) == 5
        result = await batch_runner.run(manifest, client=client, out_dir=out)
        assert result.exit_code == 0 and result.succeeded == 5
        assert check_outputs_match_service(out, sb) == 3 + 1 + 1 + 1 + 1
        tasks = {t["parameters"].get("prompt"): t for t in sb.task_records()}
        again = await batch_runner.run(manifest, client=client, out_dir=out)
        assert again.submitted == 0 and not again.changed and sb.stats()["tasks_created"] == 5

    ledger = load_ledger(out)
    jobs = ledger["jobs"]
    # several PNGs per task, in the job's folder; the voice as a WAV; kinds recorded
    pics = jobs["pics"]["outputs"]
    assert [o["path"] for o in pics] == ["pics/0.png", "pics/1.png", "pics/2.png"]
    assert {(o["content_type"], o["kind"]) for o in pics} == {("image/png", "image")}
    for o in pics:
        assert png_size((out / o["path"]).read_bytes())[0] > 0
    (voice,) = jobs["voice"]["outputs"]
    assert (voice["path"], voice["content_type"], voice["kind"]) == (
        "voice.wav",
        "audio/wav",
        "audio",
    )
    with wave.open(str(out / "voice.wav")) as audio:
        assert audio.getnframes() > 0 and audio.getframerate() > 0
    assert {jobs[j]["model"] for j in jobs} == set(manifest.models)
    assert all(o["kind"] == "video" for j in ("refs", "frames") for o in jobs[j]["outputs"])

    # each local file uploaded once (two distinct files), recorded before use
    castle = hashlib.sha256((IMAGES / "castle.png").read_bytes()).hexdigest()
    lighthouse = hashlib.sha256((IMAGES / "lighthouse.png").read_bytes()).hexdigest()
    assert set(ledger["uploads"]) == {castle, lighthouse}
    journal_uploads = [e for e in _events(out) if e["type"] == "upload_done"]
    assert journal_uploads == [] or len(journal_uploads) == 2
    url = ledger["uploads"]

    # ...and sent under the right name, in the right form for its type
    combine = tasks["put the lighthouse next to the castle"]
    assert combine["request_form"] == "json"  # a list of URLs needs a JSON body
    assert [(s["field"], s["form"], s["url"]) for s in combine["file_inputs"]["inputImage"]] == [
        ("inputImage", "json_list", url[castle]),
        ("inputImage", "json_list", URL),
        ("inputImage", "json_list", url[lighthouse]),
    ]
    refs = tasks["the castle three ways"]["file_inputs"]["inputImage3"]
    assert [(s["field"], s["form"]) for s in refs] == [("inputImage3Url", "url_list")] * 2
    frames = tasks["from the castle to the lighthouse"]
    assert frames["file_inputs"]["inputImage"] == [
        {"field": "inputImageUrl", "form": "url", "url": url[castle]}
    ]
    assert frames["file_inputs"]["inputImage2"][0]["url"] == url[lighthouse]
    assert frames["parameters"]["sound"] == "on"
    assert frames["parameters"]["multiPrompt"] == '{"shots":2}'  # an unknown type: as text

    # the gallery shows each output as what it is (tests/test_gallery*.py for the rest)
    from batch_runner.report.gallery import render_gallery

    page = render_gallery(out, batch_runner.read_ledger(out), manifest)
    assert '<a class="im" href="pics/0.png"><img src="pics/0.png"' in page
    assert '<audio controls preload="metadata" src="voice.wav">' in page
    assert "<video" not in page.split("pics/0.png")[0].rpartition("<article")[2]
    assert '<video controls muted loop playsinline preload="metadata" src="refs.mp4">' in page
    assert "wiro/text-to-image-sdxl, wiro/kokoro_tts" in page  # every model in the header


def _events(out: Path) -> list[dict[str, Any]]:
    journal = out / "journal.jsonl"
    if not journal.exists():
        return []
    return [json.loads(line) for line in journal.read_text().splitlines() if line.strip()]


async def test_prices_from_tiers_match_what_the_sandbox_charges(folder: Path) -> None:
    async with Sandbox(FAST) as sb, client_for(sb) as client:
        manifest = await load_for_run(folder / "mix.yaml", sandbox=sb)
        estimates = {job.id: job.estimate for job in manifest.jobs}
        await batch_runner.run(manifest, client=client, out_dir=folder / "out")
        charged = {t["parameters"]["prompt"]: t["charged_usd"] for t in sb.task_records()}
    by_prompt = {job.inputs["prompt"]: estimates[job.id] for job in manifest.jobs}
    for prompt, usd in charged.items():
        assert by_prompt[prompt] == pytest.approx(usd), prompt


async def test_an_uncertain_run_with_file_inputs_is_reconciled_never_paid_twice(
    folder: Path,
) -> None:
    """Every /Run drops its connection after the task is created: each job must be found
    through /Task/List (its file inputs echoed under the input's own name, lists as JSON)
    and tracked, never submitted a second time."""
    from batch_runner.sandbox import FaultConfig

    out = folder / "out"
    config = SandboxConfig(
        queue_seconds=0.02, run_seconds=(0.05, 0.1), faults=FaultConfig(drop_after_create=1.0)
    )
    options = batch_runner.RunOptions(reconcile_delay=0.0)
    async with Sandbox(config) as sb, client_for(sb) as client:
        manifest = await load_for_run(folder / "mix.yaml", sandbox=sb)
        files_jobs = [job for job in manifest.jobs if job.files]
        assert len(files_jobs) == 3
        small = dataclasses.replace(manifest, jobs=tuple(files_jobs))
        result = await batch_runner.run(small, client=client, out_dir=out, options=options)
        assert result.exit_code == 0, result.failures
        assert result.reconciled >= 3
        assert sb.stats()["tasks_created"] == 3


async def test_max_cost_with_unknown_prices_refuses_unless_told_what_to_count(
    tmp_path: Path,
) -> None:
    manifest_path = tmp_path / "m.yaml"
    models = tmp_path / "models"
    from batch_runner.models.definition import definition_from_tool
    from batch_runner.models.store import write_definition

    # a model the sandbox serves, pinned with its prices removed: estimates are unknown
    async with Sandbox(FAST) as sb, client_for(sb) as client:
        record = await client.tool_detail("wiro/kokoro_tts")
        record.pop("dynamicprice"), record.pop("approximatelycost")
        write_definition(models, definition_from_tool(record))
        manifest_path.write_text(
            "model: wiro/kokoro_tts\njobs:\n  - {prompt: hi, voice: am_adam}\n"
        )
        manifest = await load_for_run(manifest_path, sandbox=sb)
        assert manifest.jobs[0].estimate is None
        capped = batch_runner.RunOptions(max_cost=1.0)
        with pytest.raises(UsageError, match="--max-cost-unknown"):
            await batch_runner.run(manifest, client=client, out_dir=tmp_path / "a", options=capped)
        assert sb.stats()["tasks_created"] == 0
        told = batch_runner.RunOptions(max_cost=1.0, max_cost_unknown=0.5)
        result = await batch_runner.run(
            manifest, client=client, out_dir=tmp_path / "b", options=told
        )
        assert result.exit_code == 0 and sb.stats()["tasks_created"] == 1
        too_little = batch_runner.RunOptions(max_cost=0.1, max_cost_unknown=0.5)
        stopped = await batch_runner.run(
            manifest, client=client, out_dir=tmp_path / "c", options=too_little
        )
        assert stopped.exit_code == 4 and sb.stats()["tasks_created"] == 1


# -- the CLI ---------------------------------------------------------------------------------------


async def test_compare_manifest_runs_three_models_per_prompt_from_the_cli(tmp_path: Path) -> None:
    out = tmp_path / "compare"
    env = {**cli_env_without_service(), "BATCH_RUNNER_CACHE_DIR": str(tmp_path / "cache")}
    done = await run_cli(
        "run", "manifests/compare.yaml", "--sandbox", "--out", str(out), "-q", env=env,
        timeout=120,
    )  # fmt: skip
    assert done.code == 0, done.err
    assert "9 jobs: 9 succeeded" in done.out
    assert done.err.count("fetched the definition of") == 2  # Kling and Veo; PixVerse ships
    ledger = load_ledger(out)
    prompts: dict[str, set[str]] = {}
    for job_id, record in ledger["jobs"].items():
        base = job_id.partition("__model-")[0]
        prompts.setdefault(base, set()).add(record["model"])
        (saved,) = record["outputs"]
        data = (out / saved["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == saved["sha256"] and saved["kind"] == "video"
    assert prompts == {
        p: {"PixVerse/image-to-video-v5", "klingai/kling-v3", "google/veo3.1"}
        for p in ("castle", "castle-storm", "lighthouse")
    }
    assert (out / "index.html").is_file()
    assert not (tmp_path / "cache").exists()  # the built-in sandbox's definitions never cached


def cli_env_without_service() -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("WIRO_")}
    env.update(PYTHONPATH=str(REPO), NO_COLOR="1")
    return env


async def test_invalid_manifest_sends_nothing(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        "model: klingai/kling-v3\njobs:\n  - {prompt: p, inputImage: missing.png}\n"
        "  - {prompt: q, inputImageUrl: 'https://x/a.png', mode: turbo}\n"
    )
    async with Sandbox(FAST) as sb:
        env = {**cli_env(sb), "BATCH_RUNNER_CACHE_DIR": str(tmp_path / "cache")}
        done = await run_cli("run", str(path), "--out", str(tmp_path / "out"), env=env)
        assert done.code == 2
        assert f"{path}:3: job #1 field 'inputImage': file not found" in done.err
        assert "field 'mode': 'turbo' is not one of 'pro', 'std'" in done.err
        assert sb.stats()["tasks_created"] == 0 and sb.stats()["requests"].get("Run", 0) == 0


async def test_a_pixverse_folder_from_before_resumes_with_nothing_resubmitted(
    tmp_path: Path,
) -> None:
    """tests/data/legacy-demo is manifests/demo.yaml run by the code before model
    definitions (same sandbox): its ledger has no model, kinds or content types."""
    out = tmp_path / "demo"
    shutil.copytree(REPO / "tests" / "data" / "legacy-demo", out)
    before = json.loads((out / "ledger.json").read_text())
    assert "model" not in before["jobs"]["castle"]
    async with Sandbox(FAST) as sb:
        env = cli_env(sb)
        done = await run_cli("run", "manifests/demo.yaml", "--out", str(out), env=env)
        assert done.code == 0, done.err
        assert "5 jobs: 5 succeeded" in done.out
        assert sb.stats()["tasks_created"] == 0 and sb.stats()["requests"].get("Run", 0) == 0
    after = load_ledger(out)
    assert {j: r["fingerprint"] for j, r in after["jobs"].items()} == {
        j: r["fingerprint"] for j, r in before["jobs"].items()
    }
    assert [o["sha256"] for o in after["jobs"]["castle"]["outputs"]] == [
        o["sha256"] for o in before["jobs"]["castle"]["outputs"]
    ]


async def test_run_a_path_with_a_client_fetches_through_that_clients_service(
    tmp_path: Path,
) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("model: wiro/kokoro_tts\njobs:\n  - {id: hi, prompt: Hello.}\n")
    async with Sandbox(FAST) as sb, client_for(sb) as client:
        result = await batch_runner.run(path, client=client, out_dir=tmp_path / "out")
        assert result.exit_code == 0 and sb.stats()["requests"]["Tool/Detail"] == 1
    (saved,) = result.records["hi"].outputs
    assert (saved.path, saved.kind) == ("hi.wav", "audio")
    import os

    cache = Path(os.environ["BATCH_RUNNER_CACHE_DIR"])  # each test's own (conftest)
    assert len(list(cache.glob("models/127.0.0.1-*/wiro/kokoro_tts.json"))) == 1
