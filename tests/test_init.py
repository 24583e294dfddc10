"""``batch-runner init``: a starter manifest for any model, valid as written, every input shown
and commented, with a schema beside it that editors complete and check the model's inputs
from. The CLI runs as a subprocess, as users run it; definitions come from the built-in
sandbox (``--sandbox``), the package, or a ``models/`` folder beside the manifest."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from clihelp import cli_env, run_cli
from lsphelp import YamlLanguageServer, find_server

from batch_runner._resources import schemas_dir
from batch_runner.manifest.editorschema import editor_schema
from batch_runner.manifest.loader import load_manifest
from batch_runner.manifest.scaffold import starter_files, write_new
from batch_runner.manifest.yamlsafe import load_yaml
from batch_runner.models.definition import ModelDefinition, definition_from_tool
from batch_runner.models.resolver import Resolver
from batch_runner.models.store import read_definition, shipped_dir, write_definition
from batch_runner.sandbox import Sandbox, SandboxConfig

REPO = Path(__file__).resolve().parent.parent
CATALOGUE = sorted((REPO / "batch_runner" / "sandbox" / "catalogue").glob("*.json"))
GENERIC = json.loads((schemas_dir() / "manifest.schema.json").read_text("utf-8"))


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``batch-runner ARGS`` from ``cwd``, without Wiro credentials, with this test's own
    definition cache (``BATCH_RUNNER_CACHE_DIR``, set by conftest)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WIRO_")}
    env.update(PYTHONPATH=str(REPO), NO_COLOR="1")
    return subprocess.run(
        [sys.executable, "-m", "batch_runner", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=90,
    )  # fmt: skip


def model_of(record: Path) -> str:
    tool = json.loads(record.read_text("utf-8"))
    return f"{tool['cleanslugowner']}/{tool['cleanslugproject']}"


def sandbox_definition(name: str) -> ModelDefinition:
    record = next(p for p in CATALOGUE if model_of(p) == name)
    return definition_from_tool(json.loads(record.read_text("utf-8")))


def prose(text: str) -> str:
    """The comments of ``text`` as one line (wrapping undone)."""
    return " ".join(line.strip().lstrip("#").strip() for line in text.splitlines())


def yaml_keys(text: str) -> list[str]:
    """Every line of ``text`` that is not blank or a comment: what YAML reads."""
    return [
        line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]


# -- the command ----------------------------------------------------------------------------------


def test_kling_from_the_sandbox_is_valid_as_written(tmp_path: Path) -> None:
    done = cli("init", "--sandbox", "--model", "klingai/kling-v3", "m.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    manifest, schema_file = tmp_path / "m.yaml", tmp_path / "m.schema.json"
    assert done.stdout.splitlines() == [
        f"wrote {Path('m.yaml')} and {Path('m.schema.json')}",
        "m.yaml: 1 job, model klingai/kling-v3, pro/5s/on x1, estimated $0.84",
    ]
    assert "fetched the definition of klingai/kling-v3 from the built-in sandbox" in done.stderr
    text = manifest.read_text("utf-8")
    assert text.splitlines()[0] == "# yaml-language-server: $schema=m.schema.json"
    assert "m.schema.json beside it is a JSON Schema of manifests for this model" in text
    assert "#   batch-runner validate m.yaml --sandbox" in text
    checked = cli("validate", "--sandbox", "m.yaml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert (
        checked.stdout == "m.yaml: 1 job, model klingai/kling-v3, pro/5s/on x1, estimated $0.84\n"
    )
    # the example job is the record's first inspire example, settings in defaults
    data = yaml.safe_load(text)
    assert data["model"] == "klingai/kling-v3"
    assert data["defaults"] == {"mode": "pro", "duration": 5, "ratio": "16:9", "sound": True}
    assert "  sound: on" in text.splitlines()  # read back as "on", as the API takes it
    (job,) = data["jobs"]
    assert job == {
        "id": "example-1",
        "inputImageUrl": "https://cdn.wiro.ai/uploads/sampleinputs/klingai_kling_v3_input_1.jpg",
        "prompt": "The dancer spins once and the camera slowly pushes in",
    }
    schema = json.loads(schema_file.read_text("utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(data)) == []


def test_every_input_is_shown_and_commented(tmp_path: Path) -> None:
    assert (
        cli("init", "--sandbox", "--model", "google/veo3.1", "v.yaml", cwd=tmp_path).returncode == 0
    )
    text = (tmp_path / "v.yaml").read_text("utf-8")
    lines = text.splitlines()
    definition = sandbox_definition("google/veo3.1")
    for item in definition.items:
        written = [
            n for n, ln in enumerate(lines) if re.match(rf"^\s*(# )?{item.name}(Url)?: ", ln)
        ]
        assert written, f"{item.name} is not shown"
        # the line before the value (or its comment's last line) is the input's comment
        above = "\n".join(lines[max(0, written[-1] - 6) : written[-1]])
        assert f"# {item.name}: {item.type}, " in above, item.name
    assert "# durationSeconds: select, optional, default 4; one of: 4, 6, 8." in text
    assert "# seed: number, optional; an integer from 0 to 4,294,967,295." in text
    assert "# resolution: select, optional, default 1080p; one of: 720p, 1080p, 4k." in text
    said = prose(text)
    assert (
        "inputImage3: multifileinput, optional; a local image file (a path relative to this "
        "manifest) or an http(s) URL, or a list of them, at most 3;"
    ) in said
    assert "written as inputImage3Url: http(s) URLs only, comma-separated or as a list" in said
    assert "    # inputImage3: [images/inputImage3.png, images/inputImage3-2.png]" in lines
    assert "'image: FILE' fills it too" in text  # the image shorthand, on the image input
    # the required input is active; the others are commented out
    assert yaml_keys(text) == [
        "model: google/veo3.1",
        "defaults:                           # merged under every job; a job's own value wins",
        "  generateAudio: true",
        "  aspectRatio: '16:9'",
        "  resolution: 1080p",
        "  durationSeconds: 8",
        "jobs:",
        "  - id: example-1                   # optional: letters, digits, . _ -; unique",
        "    prompt: A corgi surfing a small wave at sunset, slow motion",
    ]


@pytest.mark.parametrize("record", CATALOGUE, ids=lambda p: p.stem)
def test_every_sandbox_model_gets_a_manifest_that_validates(tmp_path: Path, record: Path) -> None:
    model = model_of(record)
    done = cli("init", "--sandbox", "--model", model, "project/", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    name = model.rpartition("/")[2]
    manifest = tmp_path / "project" / f"{name}.yaml"
    assert "warning: the starter manifest needs a hand" not in done.stderr
    checked = cli("validate", "--sandbox", str(manifest), cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr + manifest.read_text("utf-8")
    assert checked.stdout.startswith(f"{manifest}: 1 job, model {model}, ")
    # ... and against its own editor schema, as an editor would check it
    schema = json.loads((tmp_path / "project" / f"{name}.schema.json").read_text("utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    data = yaml.safe_load(manifest.read_text("utf-8"))
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(data)) == []


def test_the_default_model_works_offline_and_a_folder_takes_its_name(tmp_path: Path) -> None:
    done = cli("init", "--offline", ".", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # the shipped definition: nothing fetched, nothing said
    manifest = tmp_path / "image-to-video-v5.yaml"
    assert (tmp_path / "image-to-video-v5.schema.json").is_file()
    text = manifest.read_text("utf-8")
    assert "model: PixVerse/image-to-video-v5" in text
    shipped = read_definition(shipped_dir() / "PixVerse" / "image-to-video-v5.json")
    first = shipped.tool["inspire"][0]
    job = yaml.safe_load(text)["jobs"][0]
    assert job["inputImageUrl"] == first["inputImageUrl"] and job["prompt"] == first["prompt"]
    assert cli("validate", "--offline", manifest.name, cwd=tmp_path).returncode == 0


def test_existing_files_are_never_replaced_without_force(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text("mine\n")
    refused = cli("init", "--offline", "m.yaml", cwd=tmp_path)
    assert refused.returncode == 2
    assert refused.stderr == (
        f"error: {Path('m.yaml')} already exists: give --force to replace it, or another path.\n"
    )
    assert (tmp_path / "m.yaml").read_text() == "mine\n"
    assert not (tmp_path / "m.schema.json").exists()  # nothing written at all
    (tmp_path / "m.yaml").unlink()
    (tmp_path / "m.schema.json").write_text("{}")  # the schema counts too
    assert cli("init", "--offline", "m.yaml", cwd=tmp_path).returncode == 2
    assert not (tmp_path / "m.yaml").exists()
    forced = cli("init", "--offline", "--force", "m.yaml", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert json.loads((tmp_path / "m.schema.json").read_text())["title"] == (
        "batch-runner manifest for PixVerse/image-to-video-v5"
    )


def test_dash_prints_the_manifest_pointing_at_the_packaged_schema(tmp_path: Path) -> None:
    done = cli("init", "--sandbox", "--model", "wiro/kokoro_tts", "-", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written
    first = done.stdout.splitlines()[0]
    ref = first.removeprefix("# yaml-language-server: $schema=")
    assert ref != first and Path(ref).is_absolute()
    assert json.loads(Path(ref).read_text("utf-8"))["$id"] == GENERIC["$id"]
    (tmp_path / "tts.yaml").write_text(done.stdout)
    assert cli("validate", "--sandbox", "tts.yaml", cwd=tmp_path).returncode == 0


def test_a_models_folder_beside_the_manifest_comes_first(tmp_path: Path) -> None:
    """The same lookup as validate: a definition pinned in models/ is used, offline."""
    pinned = sandbox_definition("wiro/music_gen")
    write_definition(tmp_path / "batch" / "models", pinned)
    done = cli("init", "--offline", "--model", "wiro/music_gen", "batch/music.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "generationLength: 10" in (tmp_path / "batch" / "music.yaml").read_text("utf-8")
    offline = cli("init", "--offline", "--model", "wiro/music_gen", "other.yaml", cwd=tmp_path)
    assert offline.returncode == 2
    assert "--offline forbids fetching it" in offline.stderr
    assert "batch-runner models pull wiro/music_gen" in offline.stderr


async def test_a_service_definition_is_fetched_cached_and_named_in_the_commands(
    tmp_path: Path,
) -> None:
    """--api-base: fetched from that service once, cached as validate caches it, and the
    manifest's commands carry the flag."""
    async with Sandbox(SandboxConfig()) as sb:
        env = cli_env(sb)
        base = sb.base_url
        args = ("init", "--api-base", base, "--model", "google/nano-banana", "nb.yaml")
        done = await run_cli(*args, env=env, cwd=tmp_path)
        assert done.code == 0, done.err
        assert f"fetched the definition of google/nano-banana from {base}; cached in" in done.err
        assert (
            f"#   batch-runner validate nb.yaml --api-base {base}"
            in (tmp_path / "nb.yaml").read_text()
        )
    offline = await run_cli("validate", "--offline", "--api-base", base, "nb.yaml", env=env,
                            cwd=tmp_path)  # fmt: skip
    assert offline.code == 0, offline.err
    assert offline.out.startswith("nb.yaml: 1 job, model google/nano-banana, ")


def test_unknown_models_and_conflicting_flags_exit_2(tmp_path: Path) -> None:
    typo = cli("init", "--sandbox", "--model", "klingai/kling-v33", cwd=tmp_path)
    assert typo.returncode == 2
    assert "unknown model 'klingai/kling-v33'" in typo.stderr
    assert "did you mean 'klingai/kling-v3'?" in typo.stderr
    both = cli("init", "--sandbox", "--api-base", "http://127.0.0.1:9/v1", cwd=tmp_path)
    assert both.returncode == 2 and "drop --api-base" in both.stderr
    assert list(tmp_path.iterdir()) == []


# -- the library: odd and hostile records ---------------------------------------------------------

HOSTILE: dict[str, Any] = {
    "cleanslugowner": "acme",
    "cleanslugproject": "odd-model",
    "title": "Odd\nmodel: evil",
    "description": "line one\r\njobs: []\u2028defaults: {x: 1}\x85end",
    "parameters": [
        {
            "title": "G",
            "items": [
                {"id": "source", "type": "fileinput", "label": "Source\nclip",
                 "description": "a video\n- id: evil", "required": True},
                {"id": "caption", "type": "textarea", "required": True,
                 "placeholder": "a caption\nwith: break"},
                {"id": "steps", "type": "integer", "required": True, "min": "3.5", "max": "9"},
                {"id": "mode", "type": "select", "required": True,
                 "options": [{"value": "a b", "label": "Wide\nshot"}, {"value": "on"},
                             {"value": "#x"}]},
                {"id": "on", "type": "select", "default": "yes",
                 "options": [{"value": "yes"}, {"value": "no"}]},
                {"id": "model", "type": "text"},
                {"id": "weird", "type": "json", "default": '{"a": 1}'},
                {"id": "refs", "type": "multifileinput", "maxinputlenght": "2"},
            ],
        }
    ],
    "inspire": [
        {"caption": "from\nexample", "mode": "nonsense", "refsUrl": "not a url", "steps": 100,
         "unknown": "x"},
    ],
}  # fmt: skip


def write_and_load(tmp_path: Path, definition: ModelDefinition) -> tuple[str, Any]:
    write_definition(tmp_path / "models", definition)
    path = tmp_path / "m.yaml"
    files, plan = starter_files(definition, path)
    assert plan.problems == ()
    write_new({p: t for p, t in files.items() if p is not None})
    return path.read_text("utf-8"), load_manifest(path, resolver=Resolver(offline=True))


def test_a_hostile_record_cannot_add_keys_and_still_gives_a_valid_manifest(tmp_path: Path) -> None:
    definition = definition_from_tool(HOSTILE)
    text, manifest = write_and_load(tmp_path, definition)
    assert "evil" not in "\n".join(yaml_keys(text))
    for line in text.splitlines():  # every comment stays on its line
        assert "\u2028" not in line and "\x85" not in line and "\r" not in line
    parsed = load_yaml(text).data
    assert set(parsed) == {"model", "defaults", "jobs"}
    (job,) = manifest.jobs
    assert job.inputs["caption"] == "from\nexample"  # the example, escaped, read back whole
    assert job.inputs["mode"] == "a b" and job.inputs["steps"] == "4"  # stand-ins
    assert job.inputs["sourceUrl"] == "https://example.com/videos/source.mp4"
    assert "refsUrl" not in job.inputs and "unknown" not in job.inputs
    said = prose(text)
    assert "source: fileinput, required; a local video file" in said
    assert "Replace: a stand-in (the model gives no example of it)." in said
    assert "(input 'model' of the model cannot be set: it has the name of a manifest key" in said
    assert "# 'on': yes" in text  # a key YAML would read as a boolean is quoted
    assert 'mode: select, required; one of: "a b" (Wide shot), on, "#x".' in said


def test_a_model_without_examples_or_inputs(tmp_path: Path) -> None:
    bare = {"cleanslugowner": "acme", "cleanslugproject": "bare", "parameters": None}
    text, manifest = write_and_load(tmp_path, definition_from_tool(bare))
    assert [job.id for job in manifest.jobs] == ["example-1"]
    assert "# defaults:" in text and "# matrix:" not in text


# -- the editor schema ----------------------------------------------------------------------------


def kling_errors(document: dict[str, Any]) -> list[str]:
    schema = editor_schema(sandbox_definition("klingai/kling-v3"), GENERIC)
    return [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(document)]


def test_the_editor_schema_checks_the_models_inputs_where_it_runs() -> None:
    job = {"prompt": "p", "inputImageUrl": "https://x/a.png"}
    assert kling_errors({"model": "klingai/kling-v3", "jobs": [job]}) == []
    assert kling_errors({"jobs": [{**job, "promt": "p"}]}) == [
        "Additional properties are not allowed ('promt' was unexpected)"
    ]
    assert kling_errors({"defaults": {"mode": "turbo"}, "jobs": [job]}) == [
        "'turbo' is not one of ['pro', 'std']"
    ]
    assert kling_errors({"models": {"klingai/kling-v3": {"sond": "on"}}, "jobs": [job]})
    assert kling_errors({"matrix": {"duration": [5, 7]}, "jobs": [job]})
    # where other models are in play, only the generic rules apply
    other = {"promt": "p", "resolution": "720p"}
    assert kling_errors({"model": "google/veo3.1", "jobs": [other]}) == []
    assert kling_errors({"jobs": [job, {"model": "google/veo3.1", **other}]}) == []
    axis = {"matrix": {"model": ["klingai/kling-v3", "google/veo3.1"]}, "jobs": [other]}
    assert kling_errors(axis) == []
    # the generic structure still holds
    assert kling_errors({"jobs": [job], "publish": "ftp://x"})
    assert kling_errors({"jobs": [job], "modle": "x/y"})


def test_the_manifest_schema_has_a_stable_id_named_in_the_readme() -> None:
    assert (
        GENERIC["$id"]
        == "https://github.com/batch-runner/batch-runner/schemas/manifest.schema.json"
    )
    readme = (REPO / "README.md").read_text("utf-8")
    assert GENERIC["$id"] in readme and "yaml-language-server: $schema=" in readme
    assert "publish" in GENERIC["properties"]


# -- a real editor's language server --------------------------------------------------------


@pytest.mark.skipif(find_server() is None, reason="yaml-language-server is not installed")
def test_yaml_language_server_completes_and_checks_the_models_inputs(tmp_path: Path) -> None:
    """What VS Code (Red Hat's YAML extension) and Neovim (yamlls) run: install it with
    `npm install -g yaml-language-server`, or point $YAML_LANGUAGE_SERVER at it."""
    assert (
        cli("init", "--sandbox", "--model", "klingai/kling-v3", "k.yaml", cwd=tmp_path).returncode
        == 0
    )
    text = (tmp_path / "k.yaml").read_text("utf-8")
    lines = text.splitlines()
    server = find_server()
    assert server is not None
    ls = YamlLanguageServer(server, tmp_path)
    try:
        uri = ls.open(tmp_path / "k.yaml", text)
        assert ls.wait_diagnostics(uri) == []
        at = next(n for n, ln in enumerate(lines) if ln.startswith("    prompt:"))
        bad = [*lines[:at], "    promt: hello", *lines[at:]]
        uri = ls.open(tmp_path / "bad.yaml", "\n".join(bad) + "\n")
        messages = [(d["range"]["start"]["line"], d["message"]) for d in ls.wait_diagnostics(uri)]
        assert messages == [(at, "Property promt is not allowed.")]
        job = next(n for n, ln in enumerate(lines) if ln.startswith("  - id: "))
        blank = [*lines[: job + 1], "    ", *lines[job + 1 :]]
        uri = ls.open(tmp_path / "keys.yaml", "\n".join(blank) + "\n")
        ls.wait_diagnostics(uri)
        offered = ls.complete(uri, job + 1, 4)
        assert {"negativePrompt", "inputImage2", "mode", "sound", "scale"} <= set(offered)
        mode = next(n for n, ln in enumerate(lines) if ln.startswith("  mode:"))
        typing = [*lines[:mode], "  mode: ", *lines[mode + 1 :]]
        uri = ls.open(tmp_path / "values.yaml", "\n".join(typing) + "\n")
        ls.wait_diagnostics(uri)
        assert sorted(ls.complete(uri, mode, 8)) == ["pro", "std"]
        assert "one of: pro, std" in ls.hover(uri, mode, 3)
        for record in CATALOGUE:  # every starter is clean in the editor too
            folder = tmp_path / record.stem
            model = model_of(record)
            made = cli("init", "--sandbox", "--model", model, f"{folder}/", cwd=tmp_path)
            assert made.returncode == 0, made.stderr
            (manifest,) = folder.glob("*.yaml")
            uri = ls.open(manifest, manifest.read_text("utf-8"))
            assert ls.wait_diagnostics(uri) == [], model
    finally:
        ls.close()
