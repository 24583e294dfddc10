"""Manifest loading: the good paths, normalisation, ids, fingerprints, and every bad input.

Bad inputs assert that the message names the file, the line, the job and the field, and
that nothing but a ManifestError comes out (no traceback for bad input).
"""

from __future__ import annotations

import os
import shutil
import textwrap
from pathlib import Path

import pytest

from batch_runner.errors import ManifestError
from batch_runner.manifest.job import Job
from batch_runner.manifest.loader import (
    MAX_ISSUES,
    MAX_JOBS,
    Manifest,
    load_manifest,
    supported_models,
)

REPO = Path(__file__).resolve().parent.parent
URL = "https://cdn.example.com/a.jpg"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)
JPEG = b"\xff\xd8\xff\xe0" + bytes(64)
WEBP = b"RIFF\x44\x00\x00\x00WEBPVP8 " + bytes(64)


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def load(folder: Path, text: str, name: str = "m.yaml") -> Manifest:
    return load_manifest(write(folder, name, text))


def issues(folder: Path, text: str, name: str = "m.yaml") -> list[str]:
    """The issues of a manifest that must be invalid."""
    with pytest.raises(ManifestError) as caught:
        load(folder, text, name)
    assert caught.value.issues, caught.value.message
    return caught.value.issues


def one_issue(folder: Path, text: str, name: str = "m.yaml") -> str:
    found = issues(folder, text, name)
    assert len(found) == 1, found
    return found[0]


# -- the good paths ---------------------------------------------------------------------------


def test_demo_manifest_loads() -> None:
    manifest = load_manifest(REPO / "manifests" / "demo.yaml")
    assert manifest.model == "PixVerse/image-to-video-v5"
    assert [job.id for job in manifest.jobs] == [
        "louvre",
        "offroad",
        "snowy-mirror",
        "castle",
        "city-timelapse",
    ]
    assert manifest.output_dir is None
    assert manifest.concurrency is None
    for n, job in enumerate(manifest.jobs, start=1):
        assert job.index == n - 1
        assert job.inputs["inputImageUrl"] == (
            f"https://cdn.wiro.ai/uploads/sampleinputs/pixverse_image_to_video_v5_input_{n}.jpg"
        )
        assert job.inputs["quality"] == "540p"
        assert job.inputs["duration"] == "5"
        assert job.inputs["Watermark"] == "false"
        assert job.image is None
        assert job.source.startswith("demo.yaml:")
    assert manifest.jobs[0].inputs["negativePrompt"] == "Unrealistic jets"
    assert manifest.jobs[0].inputs["prompt"].startswith("Animate the Louvre scene")


def test_sweep_manifest_uses_csv_and_matrix() -> None:
    manifest = load_manifest(REPO / "manifests" / "sweep.yaml")
    assert len(manifest.jobs) == 12
    assert manifest.jobs[0].id == "castle__seed-1__duration-5"
    assert manifest.jobs[0].source == "data/sample-jobs.csv:2"
    assert manifest.output_dir == (REPO / "outputs" / "sweep")
    assert manifest.concurrency == 4
    assert manifest.defaults == {"quality": "540p", "Watermark": "false", "style": ""}
    assert {job.inputs["seed"] for job in manifest.jobs} == {"1", "2"}


def test_minimal_manifest_defaults_the_model(tmp_path: Path) -> None:
    manifest = load(tmp_path, f"jobs:\n  - inputImageUrl: {URL}\n    prompt: a cat\n")
    assert manifest.model == "PixVerse/image-to-video-v5"
    assert manifest.path == tmp_path / "m.yaml"
    (job,) = manifest.jobs
    assert job.inputs == {"inputImageUrl": URL, "prompt": "a cat"}
    assert job.source == "m.yaml:2"
    assert isinstance(job, Job)


def test_natural_yaml_values_are_normalised(tmp_path: Path) -> None:
    manifest = load(
        tmp_path,
        f"""
        jobs:
          - inputImageUrl: {URL}
            prompt: p
            duration: 8
            Watermark: true
            seed: 123
            quality: 1080p
            style: ""
          - inputImageUrl: {URL}
            prompt: p
            duration: "5"
            Watermark: "false"
            seed: null
          - inputImageUrl: {URL}
            prompt: p
            seed: ""
            Watermark: false
        """,
    )
    first, second, third = (job.inputs for job in manifest.jobs)
    assert first["duration"] == "8"
    assert first["Watermark"] == "true"
    assert first["seed"] == "123"
    assert first["quality"] == "1080p"
    assert first["style"] == ""
    assert second["duration"] == "5"
    assert second["Watermark"] == "false"
    assert second["seed"] == ""
    assert third["seed"] == ""
    assert third["Watermark"] == "false"
    assert all(isinstance(v, str) for job in manifest.jobs for v in job.inputs.values())


def test_defaults_merge_under_jobs(tmp_path: Path) -> None:
    manifest = load(
        tmp_path,
        f"""
        defaults:
          quality: 720p
          duration: 8
          prompt: shared prompt
        jobs:
          - inputImageUrl: {URL}
          - inputImageUrl: {URL}
            quality: 360p
            prompt: own prompt
        """,
    )
    first, second = manifest.jobs
    assert first.inputs["quality"] == "720p"
    assert first.inputs["prompt"] == "shared prompt"
    assert second.inputs["quality"] == "360p"
    assert second.inputs["prompt"] == "own prompt"
    assert second.inputs["duration"] == "8"
    assert manifest.defaults == {"quality": "720p", "duration": "8", "prompt": "shared prompt"}


def test_local_image_resolved_relative_to_the_manifest(tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.png").write_bytes(PNG)
    (tmp_path / "img" / "b.JPG").write_bytes(JPEG)
    (tmp_path / "img" / "c.webp").write_bytes(WEBP)
    manifest = load(
        tmp_path,
        """
        jobs:
          - {image: img/a.png, prompt: a}
          - {image: img/b.JPG, prompt: b}
          - {image: img/c.webp, prompt: c}
        """,
        name="sub/../m.yaml",
    )
    assert [job.image for job in manifest.jobs] == [
        tmp_path / "img" / "a.png",
        tmp_path / "img" / "b.JPG",
        tmp_path / "img" / "c.webp",
    ]
    assert all(job.image is not None and job.image.is_absolute() for job in manifest.jobs)
    assert all(job.inputs["inputImageUrl"] == "" for job in manifest.jobs)


def test_loading_does_not_depend_on_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a.png").write_bytes(PNG)
    path = write(tmp_path, "m.yaml", "output_dir: out\njobs:\n  - {image: a.png, prompt: a}\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    manifest = load_manifest(Path(os.path.relpath(path)))
    assert manifest.jobs[0].image == tmp_path / "a.png"
    assert manifest.output_dir == tmp_path / "out"
    assert manifest.path == path


def test_defaults_image_and_job_url_override(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(PNG)
    manifest = load(
        tmp_path,
        f"""
        defaults:
          image: a.png
          prompt: p
        jobs:
          - id: uses-default-image
          - id: own-url
            inputImageUrl: {URL}
        """,
    )
    first, second = manifest.jobs
    assert first.image == tmp_path / "a.png"
    assert first.inputs["inputImageUrl"] == ""
    assert second.image is None
    assert second.inputs["inputImageUrl"] == URL


def test_x_keys_and_merge_keys(tmp_path: Path) -> None:
    manifest = load(
        tmp_path,
        f"""
        x-base: &base
          quality: 720p
          prompt: from anchor
        jobs:
          - <<: *base
            inputImageUrl: {URL}
          - <<: *base
            inputImageUrl: {URL}
            quality: 1080p
        """,
    )
    assert [job.inputs["quality"] for job in manifest.jobs] == ["720p", "1080p"]
    assert manifest.jobs[0].inputs["prompt"] == "from anchor"


def test_jsonl_jobs(tmp_path: Path) -> None:
    write(
        tmp_path,
        "jobs.jsonl",
        f"""
        {{"id": "a", "inputImageUrl": "{URL}", "prompt": "p", "duration": 8, "Watermark": true}}

        {{"inputImageUrl": "{URL}", "prompt": "q", "seed": 7}}
        """,
    )
    manifest = load(tmp_path, "jobs_from: jobs.jsonl\n")
    first, second = manifest.jobs
    assert first.id == "a"
    assert first.inputs["duration"] == "8"
    assert first.inputs["Watermark"] == "true"
    assert first.source == "jobs.jsonl:1"
    assert second.inputs["seed"] == "7"
    assert second.source == "jobs.jsonl:3"


def test_csv_jobs_with_inline_jobs_and_empty_cells(tmp_path: Path) -> None:
    write(
        tmp_path,
        "data/jobs.csv",
        f"""
        id , inputImageUrl,prompt,quality
        a,{URL},"multi
        line prompt",720p
        b,{URL},plain,
        """,
    )
    manifest = load(
        tmp_path,
        f"""
        defaults: {{quality: 360p}}
        jobs:
          - {{id: inline, inputImageUrl: {URL}, prompt: p}}
        jobs_from: [data/jobs.csv]
        """,
    )
    assert [job.id for job in manifest.jobs] == ["inline", "a", "b"]
    assert manifest.jobs[1].inputs["prompt"] == "multi\nline prompt"
    assert manifest.jobs[1].inputs["quality"] == "720p"
    assert manifest.jobs[2].inputs["quality"] == "360p"  # an empty cell means "not set"
    assert manifest.jobs[1].source == "data/jobs.csv:2"
    assert manifest.jobs[2].source == "data/jobs.csv:4"


def test_matrix_expands_every_job_with_readable_ids(tmp_path: Path) -> None:
    manifest = load(
        tmp_path,
        f"""
        jobs:
          - {{id: castle, inputImageUrl: {URL}, prompt: c}}
          - {{id: city, inputImageUrl: {URL}, prompt: d}}
        matrix:
          seed: [1, 2, 3]
          quality: [720p, 1080p]
        """,
    )
    ids = [job.id for job in manifest.jobs]
    assert len(ids) == 12
    assert ids[:3] == [
        "castle__seed-1__quality-720p",
        "castle__seed-1__quality-1080p",
        "castle__seed-2__quality-720p",
    ]
    assert ids[6] == "city__seed-1__quality-720p"
    assert [job.index for job in manifest.jobs] == list(range(12))
    assert manifest.jobs[1].inputs["quality"] == "1080p"
    assert manifest.jobs[1].inputs["seed"] == "1"


def test_matrix_overrides_defaults_and_unsafe_values_are_hashed(tmp_path: Path) -> None:
    manifest = load(
        tmp_path,
        f"""
        defaults: {{quality: 360p, prompt: base}}
        jobs:
          - {{id: a, inputImageUrl: {URL}}}
        matrix:
          quality: [540p]
          negativePrompt: ["blurry, low quality", ""]
        """,
    )
    first, second = manifest.jobs
    assert first.inputs["quality"] == "540p"
    assert first.id.startswith("a__quality-540p__negativePrompt-blurry-low-quality-")
    assert second.id.startswith("a__quality-540p__negativePrompt-")
    assert first.id != second.id
    assert len({first.id, second.id}) == 2


def test_long_generated_ids_stay_valid_and_unique(tmp_path: Path) -> None:
    long_id = "x" * 120
    manifest = load(
        tmp_path,
        f"""
        jobs:
          - {{id: {long_id}, inputImageUrl: {URL}, prompt: p}}
        matrix:
          seed: [1, 2]
        """,
    )
    ids = [job.id for job in manifest.jobs]
    assert len(set(ids)) == 2
    assert all(len(i) <= 128 for i in ids)


# -- ids and fingerprints -------------------------------------------------------------------


def _prompted(*prompts: str) -> str:
    return "jobs:\n" + "".join(f"  - {{inputImageUrl: '{URL}', prompt: {p}}}\n" for p in prompts)


def test_derived_ids_are_readable_stable_and_position_independent(tmp_path: Path) -> None:
    first = load(tmp_path, _prompted("Animate the castle at dawn", "A city at night"))
    again = load(tmp_path, _prompted("Animate the castle at dawn", "A city at night"))
    moved = load(
        tmp_path, _prompted("Something new", "A city at night", "Animate the castle at dawn")
    )
    ids = [job.id for job in first.jobs]
    assert ids == [job.id for job in again.jobs]
    assert ids[0].startswith("animate-the-castle-at-dawn-")
    assert len(ids[0].rsplit("-", 1)[1]) == 12
    assert moved.jobs[2].id == ids[0]
    assert moved.jobs[1].id == ids[1]


def test_identical_rows_stay_two_jobs(tmp_path: Path) -> None:
    manifest = load(tmp_path, _prompted("same", "same", "same"))
    ids = [job.id for job in manifest.jobs]
    assert len(set(ids)) == 3
    assert ids[1] == ids[0] + "-2"
    assert ids[2] == ids[0] + "-3"
    assert len({job.fingerprint for job in manifest.jobs}) == 1


def test_derived_id_without_a_prompt(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(PNG)
    manifest = load(tmp_path, "defaults: {prompt: p}\njobs:\n  - image: a.png\n")
    assert manifest.jobs[0].id.startswith("job-")


def test_fingerprint_is_stable_and_follows_edits(tmp_path: Path) -> None:
    base = f"jobs:\n  - {{id: a, inputImageUrl: '{URL}', prompt: p, duration: 5}}\n"
    one = load(tmp_path, base).jobs[0].fingerprint
    assert load(tmp_path, base).jobs[0].fingerprint == one
    assert len(one) == 64 and int(one, 16) >= 0
    same = load(tmp_path, base.replace("duration: 5", "duration: '5'")).jobs[0].fingerprint
    assert same == one  # normalised values, not spellings
    edited = load(tmp_path, base.replace("prompt: p", "prompt: q")).jobs[0].fingerprint
    assert edited != one
    with_default = load(tmp_path, "defaults: {quality: 720p}\n" + base).jobs[0].fingerprint
    assert with_default != one
    renamed = load(tmp_path, base.replace("id: a", "id: b")).jobs[0].fingerprint
    assert renamed == one  # the id is not part of what the service is asked to do


def test_fingerprint_follows_image_content_not_path_or_mtime(tmp_path: Path) -> None:
    one = tmp_path / "one"
    one.mkdir()
    (one / "a.png").write_bytes(PNG)
    text = "jobs:\n  - {id: a, image: a.png, prompt: p}\n"
    first = load(one, text).jobs[0].fingerprint
    two = tmp_path / "two"
    shutil.copytree(one, two)
    os.utime(two / "a.png", (1, 1))
    assert load(two, text).jobs[0].fingerprint == first  # another folder, another mtime
    (two / "a.png").write_bytes(PNG + b"changed")
    assert load(two, text).jobs[0].fingerprint != first


# -- bad input: the file and its YAML ----------------------------------------------------------


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="file not found"):
        load_manifest(tmp_path / "nope.yaml")
    with pytest.raises(ManifestError, match="is a directory"):
        load_manifest(tmp_path)


def test_not_yaml(tmp_path: Path) -> None:
    message = one_issue(tmp_path, "jobs:\n  - prompt: [unclosed\n  - x: y\n")
    assert message.startswith(f"{tmp_path / 'm.yaml'}:")
    assert "not valid YAML" in message


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    message = one_issue(tmp_path, text)
    assert "m.yaml:1:" in message
    assert "empty" in message


@pytest.mark.parametrize(
    ("text", "got"),
    [("- a\n- b\n", "a list"), ("just text\n", "a string"), ("42\n", "an integer")],
)
def test_top_level_not_a_mapping(tmp_path: Path, text: str, got: str) -> None:
    message = one_issue(tmp_path, text)
    assert "top level must be a mapping" in message
    assert got in message


def test_duplicate_keys_name_both_lines(tmp_path: Path) -> None:
    found = issues(
        tmp_path,
        f"""
        jobs:
          - id: a
            inputImageUrl: {URL}
            prompt: first
            prompt: second
        """,
    )
    assert any("m.yaml:5:" in m and "duplicate key 'prompt'" in m and "line 4" in m for m in found)


def test_duplicate_top_level_key(tmp_path: Path) -> None:
    found = issues(tmp_path, f"jobs:\n  - {{inputImageUrl: '{URL}', prompt: p}}\njobs: []\n")
    assert any("m.yaml:3:" in m and "duplicate key 'jobs'" in m and "line 1" in m for m in found)


def test_alias_bomb_is_refused(tmp_path: Path) -> None:
    lines = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in "bcdefgh":
        prev = chr(ord(level) - 1)
        lines.append(f"{level}: &{level} [" + ", ".join([f"*{prev}"] * 9) + "]")
    lines.append("jobs: [*h]")
    message = one_issue(tmp_path, "\n".join(lines) + "\n")
    assert "alias bomb" in message
    assert "*h" in message or "*g" in message


def test_recursive_alias_is_refused(tmp_path: Path) -> None:
    message = one_issue(tmp_path, "jobs: &j [*j]\n")
    assert "m.yaml:1:" in message and "'*j'" in message


@pytest.mark.parametrize(
    "tag",
    [
        "!!python/object/apply:os.system ['echo pwned']",
        "!!python/name:os.system",
        "!!python/tuple [1, 2]",
    ],
)
def test_python_tags_are_refused(tmp_path: Path, tag: str) -> None:
    message = one_issue(tmp_path, f"jobs:\n  - prompt: {tag}\n")
    assert "m.yaml:2:" in message
    assert "!!python/" in message and "refused" in message


def test_unknown_tags_are_refused(tmp_path: Path) -> None:
    message = one_issue(tmp_path, "jobs:\n  - prompt: !secret x\n")
    assert "m.yaml:2:" in message and "unsupported tag '!secret'" in message
    message = one_issue(tmp_path, "jobs: !!set {a, b}\n")
    assert "'!!set'" in message


def test_non_utf8_bytes_name_the_offset(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_bytes(b"jobs:\n  - prompt: caf\xe9\n")
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    (message,) = caught.value.issues
    assert "m.yaml:2:" in message
    assert "byte 0xe9 at byte offset 21" in message


def test_utf16_file_gets_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_bytes("jobs: []\n".encode("utf-16"))
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    assert "UTF-16" in caught.value.issues[0]


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_bytes(
        b"\xef\xbb\xbf" + f"jobs:\n  - {{inputImageUrl: '{URL}', prompt: p}}\n".encode()
    )
    assert len(load_manifest(path).jobs) == 1


def test_several_documents_are_refused(tmp_path: Path) -> None:
    message = one_issue(tmp_path, "jobs: []\n---\njobs: []\n")
    assert "m.yaml:2:" in message and "single document" in message


def test_deep_nesting_is_refused(tmp_path: Path) -> None:
    message = one_issue(tmp_path, "jobs: " + "[" * 200 + "]" * 200 + "\n")
    assert "nesting deeper" in message


# -- bad input: structure -------------------------------------------------------------------


def test_empty_job_list(tmp_path: Path) -> None:
    message = one_issue(tmp_path, "model: PixVerse/image-to-video-v5\njobs: []\n")
    assert "m.yaml:2:" in message and "job list is empty" in message


def test_null_job_list(tmp_path: Path) -> None:
    message = one_issue(tmp_path, "jobs:\n")
    assert "m.yaml:1:" in message and "field 'jobs'" in message and "list of jobs" in message


def test_no_jobs_at_all(tmp_path: Path) -> None:
    message = one_issue(tmp_path, "model: PixVerse/image-to-video-v5\n")
    assert "no jobs" in message


def test_unknown_top_level_key_gets_a_hint(tmp_path: Path) -> None:
    found = issues(tmp_path, f"jobs:\n  - {{inputImageUrl: '{URL}', prompt: p}}\nconcurrancy: 3\n")
    assert found == [
        f"{tmp_path / 'm.yaml'}:3: unknown top-level key 'concurrancy'; did you mean 'concurrency'?"
    ]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("concurrency: 0", "field 'concurrency': 0 is out of range"),
        ("concurrency: 2000", "field 'concurrency': 2000 is out of range"),
        ("concurrency: '4'", "field 'concurrency': expected an integer, got a string"),
        ("concurrency: true", "field 'concurrency': expected an integer, got a boolean"),
        ("output_dir: 5", "field 'output_dir': expected a string"),
        ("defaults: [a]", "field 'defaults': expected a mapping"),
        ("model: 5", "field 'model': expected a string"),
        ("matrix: {}", "field 'matrix': the matrix is empty"),
        ("matrix: {seed: 1}", "field 'matrix.seed': expected a list of values"),
        ("matrix: {seed: []}", "field 'matrix.seed': the list of values is empty"),
        ("jobs_from: jobs.txt", "field 'jobs_from': expected a .csv, .jsonl or .ndjson"),
    ],
)
def test_wrong_top_level_types(tmp_path: Path, line: str, expected: str) -> None:
    found = issues(tmp_path, f"jobs:\n  - {{inputImageUrl: '{URL}', prompt: p}}\n{line}\n")
    assert any(m.startswith(f"{tmp_path / 'm.yaml'}:3: {expected}") for m in found), found


def test_unknown_model(tmp_path: Path) -> None:
    message = one_issue(tmp_path, "model: pixverse/image-to-video-v5\njobs:\n  - {prompt: p}\n")
    assert "m.yaml:1:" in message
    assert "unknown model 'pixverse/image-to-video-v5': model names are case-sensitive" in message
    assert "did you mean 'PixVerse/image-to-video-v5'" in message


def test_the_package_ships_pixverse() -> None:
    assert "PixVerse/image-to-video-v5" in supported_models()


# -- bad input: jobs ------------------------------------------------------------------------


def test_enum_violation_names_file_line_job_and_field(tmp_path: Path) -> None:
    found = issues(
        tmp_path,
        f"""
        jobs:
          - {{id: a, inputImageUrl: '{URL}', prompt: p}}
          - {{id: b, inputImageUrl: '{URL}', prompt: p}}
          - id: castle
            inputImageUrl: {URL}
            prompt: p
            quality: 1440p
        """,
    )
    assert found == [
        f"{tmp_path / 'm.yaml'}:7: job 'castle' (#3) field 'quality': '1440p' is not one of "
        "'360p', '540p', '720p', '1080p'"
    ]


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("duration", "5.5", "5.5 is not one of '5', '8'"),
        ("duration", "6", "6 is not one of '5', '8'"),
        ("seed", "-1", "-1 is out of range: expected an integer from 0 to 2147483647"),
        ("seed", "2147483648", "2147483648 is out of range"),
        ("seed", "'2147483648'", "'2147483648' is out of range: expected 0 to 2147483647"),
        ("seed", "1.5", "expected an integer, a string or null, got a number (1.5)"),
        ("seed", "abc", "'abc' is not valid: expected an integer from 0"),
        ("Watermark", "'False'", "'False' is not one of 'false', 'true'"),
        ("Watermark", "yes please", "'yes please' is not one of 'false', 'true'"),
        ("style", "no", "false is not one of '', 'anime'"),
        ("prompt", "[a, b]", "expected a string, got a list"),
        ("prompt", "''", "'' is not valid: expected text describing the video"),
        ("prompt", "x" * 2049, "is 2,049 characters long; at most 2,048 are allowed"),
        ("negativePrompt", "{a: b}", "expected a string, got a mapping"),
        ("callbackUrl", "2024-01-01", "got a date (2024-01-01; YAML reads it as a date"),
        ("callbackUrl", "ftp://x", "'ftp://x' is not valid: expected an http(s) URL"),
        ("inputImageUrl", "castle.jpg", "expected an http(s) URL of the first frame (use 'image:'"),
    ],
)
def test_wrong_values(tmp_path: Path, field: str, value: str, expected: str) -> None:
    text = f"jobs:\n  - id: j\n    inputImageUrl: {URL}\n    prompt: p\n"
    text = (
        text.replace(f"    {field}: ", "    _: ") if field in ("inputImageUrl", "prompt") else text
    )
    text = text.replace("    _: " + (URL if field == "inputImageUrl" else "p") + "\n", "")
    text += f"    {field}: {value}\n"
    message = one_issue(tmp_path, text)
    line = text.count("\n")
    assert message.startswith(f"{tmp_path / 'm.yaml'}:{line}: job 'j' (#1) field '{field}': ")
    assert expected in message


def test_style_no_gets_a_quoting_hint(tmp_path: Path) -> None:
    message = one_issue(tmp_path, f"jobs:\n  - {{inputImageUrl: '{URL}', prompt: p, style: no}}\n")
    assert "quote" in message


def test_unknown_input_gets_did_you_mean(tmp_path: Path) -> None:
    found = issues(
        tmp_path,
        f"""
        jobs:
          - id: a
            inputImageUrl: {URL}
            promt: a cat
            negative_prompt: x
            watermark: false
            colour: red
        """,
    )
    assert (
        f"{tmp_path / 'm.yaml'}:4: job 'a' (#1): unknown input 'promt'; did you mean 'prompt'?"
        in found
    )
    assert any(":5:" in m and "did you mean 'negativePrompt'" in m for m in found)
    assert any(":6:" in m and "did you mean 'Watermark'" in m for m in found)
    assert any(
        ":7:" in m and "unknown input 'colour' (allowed: inputImageUrl, prompt" in m for m in found
    )
    assert not any("missing required input" in m for m in found)  # "did you mean" says it
    assert len(found) == 4


def test_missing_required_inputs(tmp_path: Path) -> None:
    found = issues(tmp_path, "jobs:\n  - id: a\n    quality: 720p\n")
    assert found == [
        f"{tmp_path / 'm.yaml'}:2: job 'a' (#1): missing required input 'inputImageUrl' "
        "(or 'image' for a local file); set it in the job or in 'defaults'",
        f"{tmp_path / 'm.yaml'}:2: job 'a' (#1): missing required input 'prompt'; set it in "
        "the job or in 'defaults'",
    ]


def test_job_that_is_not_a_mapping(tmp_path: Path) -> None:
    message = one_issue(tmp_path, "jobs:\n  - just a prompt\n")
    assert "m.yaml:2: job #1: a job must be a mapping" in message


def test_duplicate_ids_name_both_lines(tmp_path: Path) -> None:
    found = issues(
        tmp_path,
        f"""
        jobs:
          - {{id: castle, inputImageUrl: '{URL}', prompt: a}}
          - {{id: city, inputImageUrl: '{URL}', prompt: b}}
          - {{id: castle, inputImageUrl: '{URL}', prompt: c}}
          - {{id: CITY, inputImageUrl: '{URL}', prompt: d}}
        """,
    )
    path = tmp_path / "m.yaml"
    assert found[0] == (
        f"{path}:4: job 'castle' (#3): duplicate id 'castle', already used at {path}:2"
    )
    assert found[1].startswith(
        f"{path}:5: job 'CITY' (#4): duplicate id 'CITY', already used at {path}:3"
    )
    assert "letter case" in found[1]


def test_duplicate_ids_across_yaml_and_csv(tmp_path: Path) -> None:
    write(tmp_path, "jobs.csv", f"id,inputImageUrl,prompt\nx,{URL},p\n")
    found = issues(
        tmp_path, f"jobs:\n  - {{id: x, inputImageUrl: '{URL}', prompt: p}}\njobs_from: jobs.csv\n"
    )
    assert found == [
        f"{tmp_path / 'jobs.csv'}:2: job 'x' (#2): duplicate id 'x', "
        f"already used at {tmp_path / 'm.yaml'}:2"
    ]


def test_matrix_ids_colliding_with_explicit_ids(tmp_path: Path) -> None:
    found = issues(
        tmp_path,
        f"""
        jobs:
          - {{id: a, inputImageUrl: '{URL}', prompt: p}}
          - {{id: a__negativePrompt-x, inputImageUrl: '{URL}', prompt: p}}
        matrix:
          negativePrompt: [x__negativePrompt-y, y]
        """,
    )
    path = tmp_path / "m.yaml"
    assert found == [
        f"{path}:3: job 'a__negativePrompt-x' (#2): id 'a__negativePrompt-x__negativePrompt-y' "
        f"is already used by the job at {path}:2"
    ]


@pytest.mark.parametrize(
    ("job_id", "reason"),
    [
        ("'a/b'", "path separator"),
        ("'a\\b'", "path separator"),
        ("'..'", "must not contain '..'"),
        ("'a..b'", "must not contain '..'"),
        ("'.hidden'", "must start with a letter or digit"),
        ("'ends.'", "must not end with '.'"),
        ("'with space'", "may use only letters"),
        ("''", "must not be empty"),
        ("'" + "x" * 129 + "'", "at most 128"),
        ("NUL", "reserved device name"),
        ("com1.txt", "reserved device name"),
        ("index.html", "output folder uses itself"),
        ("7", "expected a string, got an integer"),
    ],
)
def test_bad_ids(tmp_path: Path, job_id: str, reason: str) -> None:
    message = one_issue(
        tmp_path, f"jobs:\n  - prompt: p\n    inputImageUrl: {URL}\n    id: {job_id}\n"
    )
    assert message.startswith(f"{tmp_path / 'm.yaml'}:4: job #1 field 'id': ")
    assert reason in message


# -- bad input: local images ------------------------------------------------------------------


def test_missing_local_image(tmp_path: Path) -> None:
    message = one_issue(tmp_path, "jobs:\n  - id: a\n    prompt: p\n    image: pics/castle.png\n")
    assert message == (
        f"{tmp_path / 'm.yaml'}:4: job 'a' (#1) field 'image': file not found: "
        f"{tmp_path / 'pics' / 'castle.png'}"
    )


def test_image_checked_by_content_not_name(tmp_path: Path) -> None:
    (tmp_path / "fake.png").write_bytes(b"GIF89a" + bytes(20))
    message = one_issue(tmp_path, "jobs:\n  - {id: a, prompt: p, image: fake.png}\n")
    assert "m.yaml:2: job 'a' (#1) field 'image': fake.png is not a PNG, JPEG or WebP" in message


def test_image_extension_must_be_supported(tmp_path: Path) -> None:
    (tmp_path / "photo.gif").write_bytes(PNG)
    message = one_issue(tmp_path, "jobs:\n  - {id: a, prompt: p, image: photo.gif}\n")
    assert "must end in .png, .jpg, .jpeg or .webp" in message


def test_image_too_big_empty_or_a_folder(tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    with big.open("wb") as handle:
        handle.write(PNG)
        handle.truncate(20 * 1024 * 1024 + 1)
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "dir.png").mkdir()
    found = issues(
        tmp_path,
        """
        jobs:
          - {id: a, prompt: p, image: big.png}
          - {id: b, prompt: p, image: empty.png}
          - {id: c, prompt: p, image: dir.png}
        """,
    )
    assert (
        "m.yaml:2: job 'a' (#1) field 'image': big.png is 20.0 MiB; images must be at most 20 MiB"
        in found[0]
    )
    assert "m.yaml:3:" in found[1] and "empty" in found[1]
    assert "m.yaml:4:" in found[2] and "not a regular file" in found[2]


def test_image_and_url_are_exclusive(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(PNG)
    message = one_issue(
        tmp_path, f"jobs:\n  - {{id: a, prompt: p, image: a.png, inputImageUrl: '{URL}'}}\n"
    )
    assert "m.yaml:2: job 'a' (#1): set either 'image' or 'inputImageUrl', not both" in message


def test_missing_image_in_defaults_is_reported_once(tmp_path: Path) -> None:
    found = issues(tmp_path, "defaults: {image: gone.png, prompt: p}\njobs: [{id: a}, {id: b}]\n")
    assert len(found) == 1
    assert "m.yaml:1: defaults field 'image': file not found" in found[0]


# -- bad input: defaults and matrix ---------------------------------------------------------


def test_bad_defaults(tmp_path: Path) -> None:
    found = issues(
        tmp_path,
        f"""
        defaults:
          quality: 4k
          promt: hi
          id: shared
        jobs:
          - {{inputImageUrl: '{URL}', prompt: p}}
          - {{inputImageUrl: '{URL}', prompt: q}}
        """,
    )
    path = tmp_path / "m.yaml"
    assert found == [
        f"{path}:2: defaults field 'quality': '4k' is not one of '360p', '540p', '720p', '1080p'",
        f"{path}:3: defaults: unknown input 'promt'; did you mean 'prompt'?",
        f"{path}:4: defaults cannot set 'id': each job needs its own",
    ]


def test_bad_matrix(tmp_path: Path) -> None:
    found = issues(
        tmp_path,
        f"""
        jobs:
          - {{id: a, inputImageUrl: '{URL}', prompt: p, seed: 4}}
        matrix:
          seed: [1, 2, "1"]
          qualty: [720p]
          duration: [5, 7]
          image: [a.png]
        """,
    )
    path = tmp_path / "m.yaml"
    assert found == [
        f"{path}:2: job 'a' (#1) field 'seed' is also set by the matrix (line 4); remove one",
        f"{path}:4: matrix 'seed' lists '1' twice (first at line 4)",
        f"{path}:5: matrix: unknown input 'qualty'; did you mean 'quality'?",
        f"{path}:6: matrix 'duration' value #2: 7 is not one of '5', '8'",
        f"{path}:7: matrix over 'image' is not supported; list those as jobs",
    ]


def test_matrix_past_the_limit(tmp_path: Path) -> None:
    seeds = ", ".join(str(n) for n in range(2001))
    message = one_issue(
        tmp_path,
        f"""
        jobs:
          - {{id: a, inputImageUrl: '{URL}', prompt: p}}
        matrix:
          seed: [{seeds}]
          quality: [360p, 540p, 720p, 1080p]
          duration: [5, 8]
          Watermark: [true, false]
          style: [anime, clay, comic, cyberpunk]
          negativePrompt: [a, b, c, d, e, f, g, h]
        """,
    )
    assert message.startswith(
        f"{tmp_path / 'm.yaml'}:3: 1 job x 1,024,512 matrix combinations = 1,024,512 jobs"
    )
    assert f"the limit is {MAX_JOBS:,}" in message


# -- bad input: CSV and JSON Lines ------------------------------------------------------------


def test_csv_bad_rows_report_the_csv_line(tmp_path: Path) -> None:
    write(
        tmp_path,
        "jobs.csv",
        f"""
        id,inputImageUrl,prompt,quality
        ok,{URL},fine,720p
        castle,{URL},"a castle",1440p
        short,{URL}
        "bad/id",{URL},x,
        """,
    )
    found = issues(tmp_path, "jobs_from: jobs.csv\n")
    csv_path = tmp_path / "jobs.csv"
    assert found == [
        f"{csv_path}:3: job 'castle' (#2) field 'quality': '1440p' is not one of "
        "'360p', '540p', '720p', '1080p'",
        f"{csv_path}:4: the row has 2 fields but the header has 4",
        f"{csv_path}:5: job #3 field 'id': 'bad/id' must not contain a path separator "
        "('/' or '\\')",
    ]


def test_csv_unknown_column_is_reported_once(tmp_path: Path) -> None:
    rows = "".join(f"{URL},p{i},x\n" for i in range(5))
    write(tmp_path, "jobs.csv", f"inputImageUrl,promt,colour\n{rows}")
    found = issues(tmp_path, "jobs_from: jobs.csv\n")
    header_issues = [m for m in found if "unknown column" in m]
    assert header_issues == [
        f"{tmp_path / 'jobs.csv'}:1: unknown column 'promt'; did you mean 'prompt'?",
        f"{tmp_path / 'jobs.csv'}:1: unknown column 'colour' (allowed: inputImageUrl, prompt, "
        "negativePrompt, duration, quality, style, seed, Watermark, callbackUrl, id, image)",
    ]


def test_csv_broken_quoting_and_encoding(tmp_path: Path) -> None:
    write(tmp_path, "a.csv", f'inputImageUrl,prompt\n{URL},"unterminated\n')
    message = one_issue(tmp_path, "jobs_from: a.csv\n")
    assert f"{tmp_path / 'a.csv'}:2: not valid CSV" in message
    (tmp_path / "b.csv").write_bytes(b"inputImageUrl,prompt\nx,caf\xe9\n")
    message = one_issue(tmp_path, "jobs_from: b.csv\n")
    assert f"{tmp_path / 'b.csv'}:2: not UTF-8 text: byte 0xe9 at byte offset 26" == message


def test_csv_header_only_and_empty(tmp_path: Path) -> None:
    write(tmp_path, "h.csv", "inputImageUrl,prompt\n")
    assert "header but no job rows" in one_issue(tmp_path, "jobs_from: h.csv\n")
    write(tmp_path, "e.csv", "")
    assert "the CSV file is empty" in one_issue(tmp_path, "jobs_from: e.csv\n")


def test_missing_data_file(tmp_path: Path) -> None:
    message = one_issue(
        tmp_path, "jobs: [{prompt: p, inputImageUrl: 'https://x/y'}]\njobs_from: [a.csv]\n"
    )
    assert message.startswith(
        f"{tmp_path / 'm.yaml'}:2: field 'jobs_from': cannot read 'a.csv': file not found"
    )


def test_jsonl_bad_lines(tmp_path: Path) -> None:
    write(
        tmp_path,
        "j.jsonl",
        f"""
        {{"inputImageUrl": "{URL}", "prompt": "p"}}
        {{"inputImageUrl": "{URL}", "prompt": }}
        [1, 2]
        {{"inputImageUrl": "{URL}", "promt": "p", "id": 5}}
        """,
    )
    found = issues(tmp_path, "jobs_from: j.jsonl\n")
    path = tmp_path / "j.jsonl"
    assert found[0].startswith(f"{path}:2: not valid JSON")
    assert found[1] == f"{path}:3: expected a JSON object per line, got a list"
    assert f"{path}:4: job #2 field 'id': expected a string, got an integer (5)" in found
    assert f"{path}:4: job #2: unknown input 'promt'; did you mean 'prompt'?" in found


# -- the cap -----------------------------------------------------------------------------------


def test_issues_are_capped_with_a_count(tmp_path: Path) -> None:
    jobs = "".join(f"  - {{inputImageUrl: '{URL}', prompt: p, quality: bad}}\n" for _ in range(80))
    with pytest.raises(ManifestError) as caught:
        load(tmp_path, "jobs:\n" + jobs)
    found = caught.value.issues
    assert len(found) == MAX_ISSUES + 1
    assert found[-1] == "... and 30 more"
    assert "(80 problems)" in caught.value.message
    assert found[0].startswith(f"{tmp_path / 'm.yaml'}:2: job #1 field 'quality'")
