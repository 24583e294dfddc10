"""No input makes the loader crash: anything but a valid manifest is a ManifestError."""

from __future__ import annotations

import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batch_runner.errors import ManifestError
from batch_runner.manifest.loader import Manifest, load_manifest

KEYS = [
    "model", "defaults", "jobs", "jobs_from", "matrix", "output_dir", "concurrency", "x-a",
    "id", "image", "inputImageUrl", "prompt", "negativePrompt", "duration", "quality",
    "style", "seed", "Watermark", "callbackUrl", "promt",
]  # fmt: skip
SCALARS = st.one_of(
    st.sampled_from(
        ["PixVerse/image-to-video-v5", "https://x/y.jpg", "540p", "5", "a.png", "jobs.csv",
         "../x", "", "a/b", "..", "CON"]
    ),
    st.text(max_size=8),
    st.integers(min_value=-5, max_value=2**32),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False),
)  # fmt: skip
DOCS = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(KEYS), children, max_size=5),
    ),
    max_leaves=25,
)


def _load(data: bytes) -> Manifest | None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.yaml"
        path.write_bytes(data)
        (Path(tmp) / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(8))
        (Path(tmp) / "jobs.csv").write_text("prompt,inputImageUrl\np,https://x/y\n")
        try:
            return load_manifest(path)
        except ManifestError as exc:
            assert exc.issues or exc.message
            return None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(DOCS)
def test_any_yaml_data_is_a_manifest_or_a_manifest_error(doc: object) -> None:
    _load(yaml.safe_dump(doc, allow_unicode=True).encode("utf-8"))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_are_a_manifest_or_a_manifest_error(data: bytes) -> None:
    _load(data)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="jobs:- {}[]&*!<>?|'\"#%@`,\n\t prompt", max_size=80))
def test_yaml_punctuation_soup(text: str) -> None:
    _load(text.encode("utf-8"))


JOB_KEYS = st.sampled_from(KEYS[8:])
JOB = st.dictionaries(JOB_KEYS, SCALARS, max_size=6)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(JOB, max_size=5),
    st.dictionaries(JOB_KEYS, SCALARS, max_size=3),
    st.dictionaries(JOB_KEYS, st.lists(SCALARS, max_size=3), max_size=2),
)
def test_job_shaped_documents(jobs: list[object], defaults: object, matrix: object) -> None:
    doc = {"jobs": jobs, "defaults": defaults, "matrix": matrix}
    manifest = _load(yaml.safe_dump(doc, allow_unicode=True).encode("utf-8"))
    if manifest is not None:
        assert len({job.id.casefold() for job in manifest.jobs}) == len(manifest.jobs)
        assert all(isinstance(v, str) for job in manifest.jobs for v in job.inputs.values())
