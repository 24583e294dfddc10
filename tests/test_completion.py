"""Shell completion generated from the argument parser (argcomplete): the scripts, the
completion protocol as each shell drives it, and a real bash completing a real command."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from clihelp import REPO

BIN = Path(sys.executable).parent / "batch-runner"


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "batch_runner", *args],
        capture_output=True, text=True, timeout=60, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
    )  # fmt: skip


def complete(line: str, tmp_path: Path, shell: str = "bash") -> list[str]:
    """What argcomplete answers the shell script for ``line`` (cursor at its end)."""
    answer = tmp_path / "answer"
    done = cli(
        env={
            "_ARGCOMPLETE": "1",
            "_ARGCOMPLETE_SHELL": shell,
            "COMP_LINE": line,
            "COMP_POINT": str(len(line)),
            "_ARGCOMPLETE_STDOUT_FILENAME": str(answer),
        }
    )
    assert done.returncode == 0, done.stderr
    words = answer.read_text("utf-8").replace("\n", "\x0b").split("\x0b")
    # fish answers "word<TAB>help", zsh "word:help", bash the words alone
    cut = ":" if shell == "zsh" else "\t"
    return [w.split(cut)[0].strip() for w in words if w.strip()]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts_are_printed(shell: str) -> None:
    done = cli("completion", shell)
    assert done.returncode == 0, done.stderr
    assert "batch-runner" in done.stdout and "_ARGCOMPLETE" in done.stdout
    if shell == "bash":
        syntax = subprocess.run(["bash", "-n"], input=done.stdout, text=True, capture_output=True)
        assert syntax.returncode == 0, syntax.stderr


def test_commands_flags_and_choices_complete(tmp_path: Path) -> None:
    assert "status" in complete("batch-runner st", tmp_path)
    assert "completion" in complete("batch-runner co", tmp_path, shell="fish")
    flags = complete("batch-runner run m.yaml --pub", tmp_path, shell="zsh")
    assert {"--publish", "--publish-concurrency", "--publish-public-url"} <= set(flags)
    assert set(complete("batch-runner run m.yaml --log-format ", tmp_path)) == {
        "auto", "text", "json",
    }  # fmt: skip
    shells = {w for w in complete("batch-runner completion ", tmp_path) if w[0] != "-"}
    assert shells == {"bash", "zsh", "fish"}


@pytest.mark.skipif(
    not BIN.exists() or not shutil.which("bash"), reason="needs bash and the installed script"
)
def test_bash_completes_with_the_generated_script(tmp_path: Path) -> None:
    script = tmp_path / "completion.bash"
    script.write_text(cli("completion", "bash").stdout, "utf-8")
    driver = f"""
        source {script}
        COMP_WORDS=(batch-runner run manifest.yaml --metrics-)
        COMP_CWORD=3
        COMP_LINE="batch-runner run manifest.yaml --metrics-"
        COMP_POINT=${{#COMP_LINE}}
        _python_argcomplete batch-runner
        printf '%s\\n' "${{COMPREPLY[@]}}"
    """
    env = {**os.environ, "PATH": f"{BIN.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(
        ["bash", "-c", driver], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 0, done.stderr
    assert set(done.stdout.split()) == {"--metrics-file", "--metrics-interval"}
