"""The loader's fast paths change nothing a user sees: the same jobs, ids, fingerprints,
inputs (in order), estimates and messages as the full path, on generated manifests.

Both fast paths are switched off in turn: the YAML block reader (``yamlfast``) and the
builder's per-shape checks (``FastPath.check``, :mod:`batch_runner.manifest.fastpath`).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import batch_runner.manifest.yamlfast as yamlfast
from batch_runner.errors import ManifestError
from batch_runner.manifest.fastpath import FastPath
from batch_runner.manifest.loader import load_manifest
from batch_runner.models.definition import definition_from_tool
from batch_runner.models.resolver import Resolver
from batch_runner.models.store import write_definition

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / "tests" / "data" / "tools"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)


@contextmanager
def full_path() -> Iterator[None]:
    """Both fast paths off."""
    block, fast = yamlfast.parse_block, FastPath.check
    yamlfast.parse_block = lambda _text: None  # type: ignore[assignment]
    FastPath.check = lambda _self, _raw, _data: False  # type: ignore[method-assign]
    try:
        yield
    finally:
        yamlfast.parse_block = block  # type: ignore[assignment]
        FastPath.check = fast  # type: ignore[method-assign]


def outcome(path: Path) -> Any:
    """Everything a load produces, comparable with ``==``."""
    try:
        manifest = load_manifest(path, resolver=Resolver(offline=True))
    except ManifestError as exc:
        return ("error", exc.message, exc.issues)
    jobs = [
        (j.id, j.index, list(j.inputs.items()), j.image, j.fingerprint, j.source, j.model,
         j.files, j.estimate, j.group)
        for j in manifest.jobs
    ]  # fmt: skip
    return ("ok", manifest.model, manifest.models, manifest.defaults, jobs)


def same_both_ways(path: Path) -> Any:
    fast = outcome(path)
    with full_path():
        slow = outcome(path)
    assert fast == slow
    return fast


def test_the_repository_manifests_load_the_same() -> None:
    for path in [*ROOT.glob("manifests/*.yaml"), *ROOT.glob("tests/data/manifests/*.yaml")]:
        same_both_ways(path)


# -- generated manifests ------------------------------------------------------------------------

MODELS = ["PixVerse/image-to-video-v5", "klingai/kling-v3", "wiro/sdxl", "nope/none"]
KEYS = [
    "id", "prompt", "inputImageUrl", "quality", "duration", "seed", "Watermark", "style",
    "negativePrompt", "model", "image", "promt", "mode", "sound", "inputImage", "models",
    "width", "callbackUrl",
]  # fmt: skip
VALUES = st.one_of(
    st.sampled_from(
        ["540p", "720p", "4k", "5", "8", "a cat", "https://x/y.jpg", "a.png", "missing.png",
         "anime", "std", "on", "off", "ok-id", "Ok-ID", "ok.id", "bad/id", "..", "ledger.json",
         "PixVerse/image-to-video-v5", "klingai/kling-v3", ""]
    ),
    st.integers(min_value=-3, max_value=2**31 + 3),
    st.booleans(),
    st.none(),
    st.lists(st.sampled_from(["a", "https://x/y.jpg"]), max_size=2),
)  # fmt: skip
JOB = st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=6)
IDS = st.sampled_from(["a", "b", "c", "A", "d-1", "e.2", None])


GOOD = {
    "prompt": st.sampled_from(["a cat", "Slow drone orbit", "x" * 40]),
    "inputImageUrl": st.sampled_from(["https://x/1.jpg", "https://x/2.png"]),
    "quality": st.sampled_from(["540p", "720p", "1080p"]),
    "duration": st.sampled_from([5, 8, "5"]),
    "seed": st.integers(min_value=0, max_value=2**31 - 1),
    "Watermark": st.booleans(),
    "style": st.sampled_from(["", "anime", "clay"]),
    "negativePrompt": st.sampled_from(["blurry", ""]),
    "model": st.sampled_from(MODELS[:2]),
}


@st.composite
def good_job(draw: st.DrawFn, number: int) -> dict[str, Any]:
    """A job that is probably valid (a model may still lack one of its inputs)."""
    keys = draw(st.lists(st.sampled_from(sorted(GOOD)), unique=True, max_size=5))
    job: dict[str, Any] = {"id": f"j{number}", "prompt": "p", "inputImageUrl": "https://x/y"}
    for key in keys:
        job[key] = draw(GOOD[key])
    return job


@st.composite
def manifests(draw: st.DrawFn) -> dict[str, Any]:
    if draw(st.booleans()):
        count = draw(st.integers(min_value=1, max_value=8))
        doc: dict[str, Any] = {"jobs": [draw(good_job(i)) for i in range(count)]}
        if draw(st.booleans()):
            doc["defaults"] = {"quality": "720p", "duration": 5}
        if draw(st.booleans()):
            doc["matrix"] = {"seed": [1, 2]}
        return doc
    jobs = []
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        job = draw(JOB)
        job_id = draw(IDS)
        if job_id is not None:
            job = {"id": job_id, **{k: v for k, v in job.items() if k != "id"}}
        if draw(st.booleans()):  # most jobs of a large manifest: the same, valid shape
            job = {"id": job.get("id", "x"), "prompt": "p", "inputImageUrl": "https://x/1.jpg"}
            if draw(st.booleans()):
                job["seed"] = draw(st.integers(min_value=-1, max_value=5))
        jobs.append(job)
    doc = {"jobs": jobs}
    if draw(st.booleans()):
        doc["model"] = draw(st.sampled_from(MODELS))
    if draw(st.booleans()):
        doc["defaults"] = draw(st.dictionaries(st.sampled_from(KEYS[1:9]), VALUES, max_size=3))
    if draw(st.integers(min_value=0, max_value=3)) == 0:
        doc["matrix"] = {draw(st.sampled_from(["seed", "quality", "model", "prompt"])): draw(
            st.lists(st.sampled_from(["1", "2", "720p", "klingai/kling-v3", MODELS[0]]),
                     min_size=1, max_size=3, unique=True))}  # fmt: skip
    if draw(st.integers(min_value=0, max_value=3)) == 0:
        doc["models"] = {"klingai/kling-v3": {"mode": "std"}}
    return doc


def render(doc: dict[str, Any], block: bool) -> str:
    """As YAML: block style (the fast YAML path) or JSON (a YAML flow document)."""
    if not block:
        return json.dumps(doc)
    import yaml

    return yaml.safe_dump(doc, default_flow_style=False, sort_keys=False)


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp)
        for name in ("klingai--kling-v3", "wiro--sdxl"):
            tool = json.loads((TOOLS / f"{name}.json").read_text("utf-8"))
            write_definition(path / "models", definition_from_tool(tool))
        (path / "a.png").write_bytes(PNG)
        yield path


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(manifests(), st.booleans())
def test_generated_manifests_load_the_same_both_ways(
    folder: Path, doc: dict[str, Any], block: bool
) -> None:
    path = folder / "m.yaml"
    path.write_text(render(doc, block), "utf-8")
    same_both_ways(path)


def test_a_large_uniform_manifest_loads_the_same(tmp_path: Path) -> None:
    lines = ["defaults:", "  quality: 540p", "  duration: 5", "jobs:"]
    for i in range(500):
        lines += [f"  - id: job-{i}", f"    prompt: Variation {i}"]
        lines += ["    inputImageUrl: https://x/1.jpg"] + ([f"    seed: {i}"] if i % 4 else [])
    path = tmp_path / "m.yaml"
    path.write_text("\n".join(lines) + "\n", "utf-8")
    kind, *_rest, jobs = same_both_ways(path)
    assert kind == "ok" and len(jobs) == 500


def test_a_value_many_jobs_repeat_is_held_once_and_distinct_ones_stop_being_looked_up(
    tmp_path: Path,
) -> None:
    """100,000 jobs on a few hundred images hold each URL once; prompts, all distinct, stop
    being looked up after the probe (no table of every prompt kept while loading)."""
    count = 5000
    lines = ["jobs:"]
    for i in range(count):
        lines += [f"  - id: job-{i}", f"    prompt: Variation number {i} of the scene"]
        lines += [f"    inputImageUrl: https://cdn.example.com/images/{i % 7}.jpg"]
    path = tmp_path / "m.yaml"
    path.write_text("\n".join(lines) + "\n", "utf-8")
    jobs = load_manifest(path).jobs
    urls = {id(job.inputs["inputImageUrl"]) for job in jobs}
    assert len(urls) == 7
    assert jobs[3].inputs["inputImageUrl"] == "https://cdn.example.com/images/3.jpg"
    assert len({job.inputs["prompt"] for job in jobs}) == count
    builder_tables: list[dict[str, Any]] = []
    original = FastPath.shared_value

    def spy(self: FastPath, key: str, value: str, seen: dict[str, str]) -> str:
        builder_tables.append(self.repeats)
        return original(self, key, value, seen)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(FastPath, "shared_value", spy)
        load_manifest(path)
    repeats = builder_tables[-1]
    assert repeats["prompt"] is None and len(repeats["inputImageUrl"]) == 7
