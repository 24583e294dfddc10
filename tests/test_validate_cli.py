"""``batch-runner validate``: exit codes, what goes to stdout and stderr, any working directory.

Most tests run the real CLI in a subprocess (``python -m batch_runner validate``) from a
folder that is not the repository, the way a user would.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from batch_runner.cli import validate
from batch_runner.manifest.loader import load_manifest

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data" / "manifests"


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "batch_runner", "validate", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A copy of the test manifests, and a separate folder to run the CLI from."""
    shutil.copytree(DATA, tmp_path / "manifests")
    (tmp_path / "elsewhere").mkdir()
    return tmp_path


def test_valid_manifests_exit_0_with_one_line_each(workdir: Path) -> None:
    demo = REPO / "manifests" / "demo.yaml"
    result = cli(str(demo), "../manifests/good.yaml", cwd=workdir / "elsewhere")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines == [
        f"{demo}: 5 jobs, model PixVerse/image-to-video-v5, 540p/5s x5, estimated $2.25",
        "../manifests/good.yaml: 6 jobs, model PixVerse/image-to-video-v5, 540p/5s x2, "
        "540p/8s x1, 1080p/5s x2, 1080p/8s x1, estimated $6.60",
    ]


def test_invalid_manifest_exits_2_with_every_problem(workdir: Path) -> None:
    result = cli("../manifests/bad.yaml", cwd=workdir / "elsewhere")
    assert result.returncode == 2
    assert result.stdout == ""
    shown = "../manifests/bad.yaml"
    missing = workdir / "manifests" / "images" / "missing.png"
    assert result.stderr.splitlines() == [
        f"{shown}:2: field 'concurrency': 0 is out of range: expected an integer from 1 to 1024 "
        "(how many tasks to keep in flight)",
        f"{shown}:5: job 'castle' (#1) field 'image': file not found: {missing}",
        f"{shown}:6: job 'castle' (#1): unknown input 'promt'; did you mean 'prompt'?",
        f"{shown}:7: job 'castle' (#2): duplicate id 'castle', already used at {shown}:4",
        f"{shown}:10: job 'castle' (#2) field 'quality': '1440p' is not one of '360p', '540p', "
        "'720p', '1080p'",
        f"error: {shown}: invalid manifest (5 problems)",
    ]
    assert "Traceback" not in result.stderr


def test_mixed_manifests_exit_2_and_still_summarise_the_valid_ones(workdir: Path) -> None:
    result = cli("good.yaml", "bad.yaml", "missing.yaml", cwd=workdir / "manifests")
    assert result.returncode == 2
    assert result.stdout.startswith("good.yaml: 6 jobs,")
    assert "error: bad.yaml: invalid manifest" in result.stderr
    assert "error: missing.yaml: file not found" in result.stderr


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "empty"),
        (b"jobs: [\n", "not valid YAML"),
        (b"jobs:\n  - prompt: caf\xe9\n", "byte 0xe9 at byte offset 21"),
        (b"jobs: !!python/object/apply:os.system ['true']\n", "!!python/object/apply"),
        (b"- a list\n", "top level must be a mapping"),
    ],
)
def test_bad_files_never_show_a_traceback(workdir: Path, content: bytes, expected: str) -> None:
    (workdir / "elsewhere" / "x.yaml").write_bytes(content)
    result = cli("x.yaml", cwd=workdir / "elsewhere")
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_usage_without_manifest_is_exit_2(workdir: Path) -> None:
    result = cli(cwd=workdir)
    assert result.returncode == 2
    assert "MANIFEST" in result.stderr


def test_good_fixture_resolves_everything_relative_to_the_manifest(workdir: Path) -> None:
    manifest = load_manifest(workdir / "manifests" / "good.yaml")
    image = workdir / "manifests" / "images" / "castle.png"
    assert manifest.output_dir == workdir / "manifests" / "out"
    ids = [job.id for job in manifest.jobs]
    assert ids == [
        "castle__quality-540p",
        "castle__quality-1080p",
        "remote__quality-540p",
        "remote__quality-1080p",
        "from-csv__quality-540p",
        "from-csv__quality-1080p",
    ]
    assert manifest.jobs[0].image == image
    assert manifest.jobs[4].image == image
    assert manifest.jobs[4].inputs["seed"] == "42"
    assert manifest.jobs[4].source == "rows.csv:2"


def test_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    args = argparse.Namespace(manifests=[DATA / "good.yaml", DATA / "bad.yaml"])
    assert validate.run(args) == 2
    out, err = capsys.readouterr()
    assert out.count("\n") == 1 and "good.yaml: 6 jobs" in out
    assert err.count("\n") == 6


def test_register_adds_the_subcommand() -> None:
    parser = argparse.ArgumentParser()
    validate.register(parser.add_subparsers())
    args = parser.parse_args(["validate", "a.yaml", "b.yaml"])
    assert args.manifests == [Path("a.yaml"), Path("b.yaml")]
    assert args.func is validate.run


def test_version_answers_at_once_and_matches_the_parser(tmp_path: Path) -> None:
    """``--version`` alone is answered before the subcommands (and the sandbox behind one)
    are imported, with the text argparse would print; with a subcommand after it, argparse
    still answers."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    code = (
        "import sys, batch_runner.cli as c; rc = c.main(['--version']);"
        "print(sorted(m for m in sys.modules if m.startswith('batch_runner.')))"
    )
    quick = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    version, loaded = quick.stdout.splitlines()
    assert quick.returncode == 0 and version.startswith("batch-runner ")
    assert "sandbox" not in loaded and "batch_runner.cli.run" not in loaded, loaded
    with pytest.raises(SystemExit) as stop:
        from batch_runner.cli import build_parser

        build_parser().parse_args(["--version"])
    assert stop.value.code == 0
    argv = [sys.executable, "-m", "batch_runner", "--version", "status"]
    slow = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert slow.returncode == 0 and slow.stdout.strip() == version


def test_other_commands_describe_sandbox_without_importing_it(tmp_path: Path) -> None:
    """``status`` and the rest list ``sandbox`` with the same line as the full parser, and
    do not import the sandbox (its catalogue) or filelock/asyncio to read a folder."""
    from batch_runner.cli import SANDBOX_HELP, build_parser

    def sandbox_line(parser: argparse.ArgumentParser) -> str:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        return next(c.help for c in action._choices_actions if c.dest == "sandbox") or ""

    assert sandbox_line(build_parser()) == SANDBOX_HELP == sandbox_line(build_parser(only="run"))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    code = (
        "import sys, batch_runner.cli as c; rc = c.main(['status', sys.argv[1]]);"
        "print(rc, sorted(m for m in sys.modules if m.startswith('batch_runner.sandbox')"
        " or m in ('filelock', 'asyncio')))"
    )
    shutil.copytree(REPO / "tests" / "data" / "legacy-demo", tmp_path / "out")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "out")], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert "succeeded" in done.stdout, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "0 []", done.stdout


def test_a_valid_manifest_is_checked_without_jsonschema_or_asyncio(tmp_path: Path) -> None:
    """Validating a manifest whose values all pass the fast checks loads neither
    jsonschema nor asyncio (about 80 ms of every start); an invalid one still gets
    jsonschema's messages."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    good = tmp_path / "good.yaml"
    good.write_text(
        "model: PixVerse/image-to-video-v5\njobs_from: [rows.csv]\nx-note: {}\njobs:\n"
        "  - id: a\n    prompt: hi\n    inputImageUrl: https://x/y.jpg\n    duration: 8\n",
        encoding="utf-8",
    )
    (tmp_path / "rows.csv").write_text("id,prompt,inputImageUrl\nb,yo,https://x/z.jpg\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text(good.read_text().replace("duration: 8", "duration: 7"), encoding="utf-8")
    code = (
        "import sys, batch_runner.cli as c; rc = c.main(['validate', '--offline', sys.argv[1]]);"
        "print(rc, sorted(m for m in ('jsonschema', 'asyncio') if m in sys.modules))"
    )

    def validate(path: Path) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-c", code, str(path)]
        return subprocess.run(
            argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )

    runs = [validate(good), validate(bad)]
    assert runs[0].stdout.strip().splitlines()[-1] == "0 []", runs[0].stdout + runs[0].stderr
    assert runs[1].stdout.strip().splitlines()[-1] == "2 ['jsonschema']", runs[1].stdout
    assert "duration" in runs[1].stderr and "bad.yaml:8:" in runs[1].stderr, runs[1].stderr
