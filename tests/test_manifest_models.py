"""Manifests for any model: validation from definitions pinned beside the manifest (no
network), file inputs, several models per manifest (per job, in defaults, as a matrix axis,
per-model blocks), ids and fingerprints."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from batch_runner.errors import ManifestError
from batch_runner.manifest.loader import Manifest, load_manifest
from batch_runner.models.definition import definition_from_tool
from batch_runner.models.resolver import Resolver
from batch_runner.models.store import write_definition

TOOLS = Path(__file__).resolve().parent / "data" / "tools"
URL = "https://cdn.example.com/a.jpg"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)
WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(64)


def pin(folder: Path, *fixtures: str) -> None:
    """Pin definitions from tests/data/tools in ``folder/models`` (a project's lock)."""
    for name in fixtures:
        tool = json.loads((TOOLS / f"{name}.json").read_text("utf-8"))
        write_definition(folder / "models", definition_from_tool(tool))


def write(folder: Path, text: str, name: str = "m.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), "utf-8")
    return path


def load(folder: Path, text: str) -> Manifest:
    return load_manifest(write(folder, text), resolver=Resolver(offline=True))


def issues(folder: Path, text: str) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        load(folder, text)
    return [m.removeprefix(f"{folder / 'm.yaml'}:") for m in caught.value.issues]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    pin(tmp_path, "klingai--kling-v3", "google--veo3.1", "google--nano-banana", "wiro--sdxl")
    (tmp_path / "first.png").write_bytes(PNG)
    (tmp_path / "last.png").write_bytes(PNG + b"last")
    (tmp_path / "voice.wav").write_bytes(WAV)
    return tmp_path


# -- one model that is not PixVerse ------------------------------------------------------------


def test_local_and_url_file_inputs_become_uploads_and_url_fields(project: Path) -> None:
    manifest = load(
        project,
        f"""
        model: klingai/kling-v3
        jobs:
          - id: a
            inputImage: first.png
            inputImage2Url: {URL}
            prompt: day to night
            sound: on
        """,
    )
    (job,) = manifest.jobs
    assert job.model == "klingai/kling-v3" and manifest.models == ("klingai/kling-v3",)
    # the local file is uploaded at run time into inputImageUrl; the URL goes as given;
    # what the manifest leaves out (required or not) takes the service's default
    assert job.inputs == {
        "inputImageUrl": "", "inputImage2Url": URL, "prompt": "day to night", "sound": "on",
    }  # fmt: skip
    (files,) = job.files
    assert (files.name, files.send, files.kind) == ("inputImage", "inputImageUrl", "file")
    assert files.refs[0].path == project / "first.png" and files.refs[0].sha256
    assert job.image == project / "first.png"
    assert job.estimate == 1.12  # pro/5/on has no tier: the typical cost


def test_image_shorthand_is_the_same_job_as_the_input_itself(project: Path) -> None:
    one = load(project, "model: klingai/kling-v3\njobs:\n  - {image: first.png, prompt: p}\n")
    two = load(project, "model: klingai/kling-v3\njobs:\n  - {inputImage: first.png, prompt: p}\n")
    assert one.jobs[0].fingerprint == two.jobs[0].fingerprint
    assert one.jobs[0].id == two.jobs[0].id


def test_files_count_by_content_not_by_name(project: Path) -> None:
    (project / "copy.png").write_bytes(PNG)
    text = "model: klingai/kling-v3\njobs:\n  - {{id: a, inputImage: {}, prompt: p}}\n"
    first = load(project, text.format("first.png")).jobs[0].fingerprint
    assert load(project, text.format("copy.png")).jobs[0].fingerprint == first
    (project / "copy.png").write_bytes(PNG + b"edited")
    assert load(project, text.format("copy.png")).jobs[0].fingerprint != first


def test_several_files_multifileinput_and_combinefileinput(project: Path) -> None:
    manifest = load(
        project,
        f"""
        jobs:
          - id: refs
            model: google/veo3.1
            prompt: p
            referenceImages: [first.png, {URL}]
          - id: refs-urls
            model: google/veo3.1
            prompt: p
            referenceImagesUrl: "{URL},{URL}?b"
          - id: combine
            model: google/nano-banana
            prompt: p
            inputImage: [{URL}, last.png]
          - id: combine-urls
            model: google/nano-banana
            prompt: p
            inputImage: [{URL}]
        """,
    )
    refs, urls, combine, combine_urls = manifest.jobs
    assert refs.inputs["referenceImagesUrl"] == ""
    assert [r.token for r in refs.files[0].refs][1] == URL
    assert urls.inputs["referenceImagesUrl"] == f"{URL},{URL}?b" and urls.files == ()
    assert combine.files[0].kind == "combine" and combine.files[0].send == "inputImage"
    assert combine_urls.inputs["inputImage"] == json.dumps([URL], separators=(",", ":"))
    assert manifest.models == ("google/veo3.1", "google/nano-banana")


# -- clear errors before money is spent ----------------------------------------------------------


def test_messages_name_file_line_job_field_and_the_closest_real_value(project: Path) -> None:
    (project / "notes.png").write_text("not a picture")
    found = issues(
        project,
        f"""
        model: klingai/kling-v3
        jobs:
          - id: a
            inputImage: first.png
            negative_prompt: blurry
            mode: prof
            cfgScale: 2
            duration: 6
          - id: b
            inputImage: notes.png
            prompt: p
          - id: c
            inputImage: voice.wav
          - id: d
            inputImageUrl: first.png
          - id: e
            inputImage: first.png
            inputImageUrl: {URL}
          - id: f
            prompt: no frame
        """,
    )
    assert found == [
        "5: job 'a' (#1): unknown input 'negative_prompt'; did you mean 'negativePrompt'?",
        "6: job 'a' (#1) field 'mode': 'prof' is not one of 'pro', 'std'; did you mean 'pro'?",
        "7: job 'a' (#1) field 'cfgScale': 2 is out of range: expected a number from 0 to 1",
        "8: job 'a' (#1) field 'duration': 6 is not one of '5', '10', '15'",
        "10: job 'b' (#2) field 'inputImage': notes.png is not an image, audio or video file "
        "(by its content)",
        "13: job 'c' (#3) field 'inputImage': voice.wav is an audio file (audio/wav); this "
        "input takes images",
        "15: job 'd' (#4) field 'inputImageUrl': 'first.png' is not an http(s) URL (give local "
        "files in 'inputImage')",
        "18: job 'e' (#5): set either 'inputImage' or 'inputImageUrl', not both",
        "19: job 'f' (#6): missing required input 'inputImage' (or 'image' for a local file); "
        "set it in the job or in 'defaults'",
    ]


def test_file_limits_count_size_and_missing(project: Path) -> None:
    big = project / "big.png"
    with big.open("wb") as handle:
        handle.write(PNG)
        handle.truncate(101 * 1024 * 1024)  # sparse: no disk space used
    found = issues(
        project,
        """
        model: google/veo3.1
        jobs:
          - {id: a, prompt: p, referenceImages: [first.png, last.png, first.png, last.png]}
          - {id: b, prompt: p, inputImage: big.png}
          - {id: c, prompt: p, inputImage: nowhere.png}
          - {id: d, prompt: p, inputImage: "ftp://x/a.png"}
        """,
    )
    assert found[0].startswith("3: job 'a' (#1) field 'referenceImages': ")
    assert "at most 3" in found[0]
    assert (
        found[1]
        == "4: job 'b' (#2) field 'inputImage': big.png is 101.0 MiB; uploads must be at most "
        "100 MiB"
    )
    assert found[2].startswith("5: job 'c' (#3) field 'inputImage': file not found: ")
    assert "only http(s) URLs or local files" in found[3]


def test_unknown_model_names_the_pull_command_and_the_closest(project: Path) -> None:
    found = issues(project, "model: klingai/kling-v4\njobs:\n  - {prompt: p}\n")
    assert len(found) == 1
    assert found[0].startswith("1: model 'klingai/kling-v4' has no local definition (looked in ")
    assert "did you mean 'klingai/kling-v3'?" in found[0]
    assert (
        "--offline forbids fetching it: run `batch-runner models pull klingai/kling-v4`" in found[0]
    )


def test_a_broken_pinned_definition_is_an_error_not_skipped(project: Path) -> None:
    (project / "models" / "klingai" / "kling-v3.json").write_text('{"format": 1}')
    (found,) = issues(project, "model: klingai/kling-v3\njobs:\n  - {prompt: p}\n")
    assert "the definition of 'klingai/kling-v3' is unusable" in found
    assert "not a model definition" in found


# -- several models -------------------------------------------------------------------------------


COMPARE = f"""
defaults:
  prompt: a castle at dawn
  image: first.png
models:
  klingai/kling-v3: {{mode: std, sound: off}}
  google/veo3.1: {{resolution: 720p}}
matrix:
  model: [klingai/kling-v3, google/veo3.1, PixVerse/image-to-video-v5]
jobs:
  - id: castle
  - id: lighthouse
    prompt: a lighthouse
    models:
      google/veo3.1: {{inputImageLastUrl: "{URL}"}}
"""


def test_a_model_matrix_runs_every_job_on_every_model(project: Path) -> None:
    manifest = load(project, COMPARE)
    assert [job.id for job in manifest.jobs] == [
        "castle__model-kling-v3", "castle__model-veo3.1", "castle__model-image-to-video-v5",
        "lighthouse__model-kling-v3", "lighthouse__model-veo3.1",
        "lighthouse__model-image-to-video-v5",
    ]  # fmt: skip
    by_id = {job.id: job for job in manifest.jobs}
    assert [job.group for job in manifest.jobs] == ["castle"] * 3 + ["lighthouse"] * 3
    kling = by_id["castle__model-kling-v3"]
    assert kling.inputs["mode"] == "std" and kling.inputs["sound"] == "off"
    assert "resolution" not in kling.inputs
    veo = by_id["lighthouse__model-veo3.1"]
    assert veo.inputs["inputImageLastUrl"] == URL and veo.inputs["prompt"] == "a lighthouse"
    pix = by_id["castle__model-image-to-video-v5"]
    assert pix.inputs["inputImageUrl"] == "" and pix.files[0].kind == "url"  # legacy upload
    assert manifest.models == (
        "klingai/kling-v3", "google/veo3.1", "PixVerse/image-to-video-v5",
    )  # fmt: skip
    assert {job.model for job in manifest.jobs} == set(manifest.models)
    assert all(job.estimate is not None for job in manifest.jobs)


def test_inputs_one_model_lacks_must_sit_in_its_block(project: Path) -> None:
    found = issues(
        project,
        """
        defaults:
          quality: 540p
        models:
          klingai/kling-v2: {mode: std}
          klingai/kling-v3: {modee: std, duration: 7}
        matrix:
          model: [klingai/kling-v3, PixVerse/image-to-video-v5]
        jobs:
          - {id: a, prompt: p, image: first.png, sound: on, model: google/veo3.1}
        """,
    )
    assert found == [
        "2: defaults: klingai/kling-v3 takes no input 'quality'; inputs for one model only go "
        "in a per-model block ('models:')",
        "4: models: 'klingai/kling-v2' is not the model of any job (the jobs use "
        "klingai/kling-v3, PixVerse/image-to-video-v5); did you mean 'klingai/kling-v3'?",
        "5: models.klingai/kling-v3: unknown input 'modee'; did you mean 'mode'?",
        "5: models.klingai/kling-v3 field 'duration': 7 is not one of '5', '10', '15'",
        "9: job 'a' (#1) field 'model' is also set by the matrix (line 7); remove one",
        "9: job 'a' (#1) on PixVerse/image-to-video-v5: PixVerse/image-to-video-v5 takes no "
        "input 'sound'; inputs for one model only go in a per-model block ('models:')",
    ]


def test_per_job_model_and_a_csv_model_column(project: Path) -> None:
    (project / "jobs.csv").write_text(
        "id,model,prompt,inputImage,samples\n"
        "a,klingai/kling-v3,p,first.png,\n"
        "b,wiro/text-to-image-sdxl,q,,3\n"
        "c,,r,,\n"
    )
    blocks = f"models: {{PixVerse/image-to-video-v5: {{inputImageUrl: '{URL}'}}}}\n"
    manifest = load(project, f"{blocks}jobs_from: jobs.csv\n")
    assert [(j.id, j.model) for j in manifest.jobs] == [
        ("a", "klingai/kling-v3"), ("b", "wiro/text-to-image-sdxl"),
        ("c", "PixVerse/image-to-video-v5"),
    ]  # fmt: skip
    assert manifest.jobs[1].estimate == pytest.approx(0.012)  # 3 samples x $0.004
    assert manifest.model == "PixVerse/image-to-video-v5"


def test_model_in_defaults_and_unknown_csv_columns(project: Path) -> None:
    (project / "jobs.csv").write_text("prompt,colour\np,red\n")
    with pytest.raises(ManifestError) as caught:
        load(project, "defaults: {model: klingai/kling-v3}\njobs_from: jobs.csv\n")
    csv_issue, job_issue = caught.value.issues
    assert csv_issue.endswith(
        "jobs.csv:1: unknown column 'colour' (allowed: inputImage, inputImage2, prompt, "
        "negativePrompt, mode, duration, ratio, sound, multiPrompt, cfgScale, inputImageUrl, "
        "inputImage2Url, callbackUrl, id, image)"
    )
    assert job_issue.endswith(
        "jobs.csv:2: job #1: missing required input 'inputImage' (or 'image' for a local "
        "file); set it in the job or in 'defaults'"
    )


def test_manifest_summary_for_several_models(project: Path) -> None:
    from batch_runner.report.summary import manifest_summary

    manifest = load(project, COMPARE)
    line = manifest_summary("c.yaml", manifest)
    assert line.startswith(
        "c.yaml: 6 jobs, 3 models (klingai/kling-v3 x2, google/veo3.1 x2, "
        "PixVerse/image-to-video-v5 x2), estimated $"
    )
