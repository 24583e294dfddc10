"""``batch-runner models list|show|pull`` and the definition flags of ``validate`` and
``run``, as users run them: subprocesses, exact exit codes, the words they read."""

from __future__ import annotations

import json
from pathlib import Path

from clihelp import REPO, cli_env, run_cli

from batch_runner.models.store import service_key
from batch_runner.sandbox import Sandbox, SandboxConfig

FAST = SandboxConfig(queue_seconds=0.02, run_seconds=(0.05, 0.1))


def local_env(tmp_path: Path) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("WIRO_")}
    env.update(PYTHONPATH=str(REPO), NO_COLOR="1", BATCH_RUNNER_CACHE_DIR=str(tmp_path / "cache"))
    return env


async def test_models_list_and_show_from_the_built_in_sandbox(tmp_path: Path) -> None:
    env = local_env(tmp_path)
    listed = await run_cli("models", "list", "--sandbox", env=env)
    assert listed.code == 0, listed.err
    lines = listed.out.splitlines()
    assert lines[0].split() == ["model", "title", "kind", "typical", "cost"]
    names = [line.split()[0] for line in lines[2:]]
    assert {"PixVerse/image-to-video-v5", "klingai/kling-v3", "google/veo3.1"} <= set(names)
    searched = await run_cli("models", "list", "veo", "--sandbox", env=env)
    assert [line.split()[0] for line in searched.out.splitlines()[2:]] == ["google/veo3.1"]
    shown = await run_cli("models", "show", "google/veo3.1", "--sandbox", env=env)
    assert shown.code == 0, shown.err
    out = shown.out
    assert out.startswith("google/veo3.1: Veo 3.1\n")
    assert "input " in out and "allowed values" in out
    row = next(line for line in out.splitlines() if line.startswith("inputImage3 "))
    assert "multifileinput" in row and "≤ 3 files" in row
    row = next(line for line in out.splitlines() if line.startswith("resolution "))
    assert "720p, 1080p, 4k" in row and "1080p" in row
    assert "resolution=720p, generateAudio=false: $0.2 per second of video" in out
    assert "'image: FILE' in a manifest fills inputImage." in out
    as_json = await run_cli("models", "show", "google/veo3.1", "--sandbox", "--json", env=env)
    assert json.loads(as_json.out)["model"] == "google/veo3.1"


async def test_pull_into_a_project_then_validate_offline(tmp_path: Path) -> None:
    env = local_env(tmp_path)
    models = tmp_path / "models"
    pulled = await run_cli(
        "models", "pull", "klingai/kling-v3", "google/veo3.1", "--to", str(models), "--sandbox",
        env=env,
    )  # fmt: skip
    assert pulled.code == 0, pulled.err
    assert f"pulled klingai/kling-v3 into {models / 'klingai' / 'kling-v3.json'} (12 inputs" in (
        pulled.out
    )
    assert pulled.out.count(": new") == 2
    assert "warning: klingai/kling-v3: input 'multiPrompt' has type 'json'" in pulled.err
    again = await run_cli(
        "models", "pull", "klingai/kling-v3", "--to", str(models), "--sandbox", env=env
    )
    assert again.out.rstrip().endswith(": unchanged")
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        "model: klingai/kling-v3\njobs:\n  - {prompt: p, inputImageUrl: 'https://x/a.png'}\n"
    )
    done = await run_cli("validate", str(manifest), "--offline", env=env)
    assert done.code == 0, done.err
    assert done.out.startswith(f"{manifest}: 1 job, model klingai/kling-v3, pro/10s/off x1,")
    assert done.err == ""  # pinned: nothing fetched, nothing said


async def test_pull_into_the_user_cache_keyed_by_the_api_base(tmp_path: Path) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text("model: wiro/kokoro_tts\njobs:\n  - {prompt: hello}\n")
    async with Sandbox(FAST) as sb:
        env = {**cli_env(sb), "BATCH_RUNNER_CACHE_DIR": str(tmp_path / "cache")}
        offline = await run_cli("validate", str(manifest), "--offline", env=env)
        assert offline.code == 2
        assert "--offline forbids fetching it: run `batch-runner models pull wiro/kokoro_tts`" in (
            offline.err
        )
        pulled = await run_cli("models", "pull", "wiro/kokoro_tts", env=env)
        assert pulled.code == 0, pulled.err
        stored = tmp_path / "cache" / "models" / service_key(sb.base_url) / "wiro"
        assert (stored / "kokoro_tts.json").is_file()
        done = await run_cli("validate", str(manifest), "--offline", env=env)
        assert done.code == 0, done.err
        assert "estimated $0.00" in done.out  # $0.00002 per prompt character
        local = await run_cli("models", "list", "--offline", env=env)
        names = [line.split()[0] for line in local.out.splitlines()[2:]]
        assert names == ["wiro/kokoro_tts", "PixVerse/image-to-video-v5"]  # cache, package
        unknown = await run_cli("models", "pull", "wiro/kokoro-tts2", env=env)
        assert unknown.code == 2
        assert "unknown model 'wiro/kokoro-tts2': the service has no such model" in unknown.err


async def test_validate_fetches_a_missing_model_and_says_so_in_one_line(tmp_path: Path) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text("model: google/nano-banana\njobs:\n  - {prompt: a banana}\n")
    async with Sandbox(FAST) as sb:
        env = {**cli_env(sb), "BATCH_RUNNER_CACHE_DIR": str(tmp_path / "cache")}
        first = await run_cli("validate", str(manifest), env=env)
        assert first.code == 0, first.err
        assert first.out == f"{manifest}: 1 job, model google/nano-banana, estimated $0.04\n"
        (line,) = first.err.splitlines()
        assert line.startswith(f"fetched the definition of google/nano-banana from {sb.base_url}")
        second = await run_cli("validate", str(manifest), env=env)
        assert second.err == "" and sb.stats()["requests"]["Tool/Detail"] == 1


async def test_run_offline_and_max_cost_flags(tmp_path: Path) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text("model: wiro/music_gen\njobs:\n  - {prompt: a tune}\n")
    env = local_env(tmp_path)
    offline = await run_cli("run", str(manifest), "--sandbox", "--offline", env=env)
    assert offline.code == 2 and "--offline forbids fetching it" in offline.err
    help_text = await run_cli("run", "--help", env=env)
    assert "--max-cost-unknown USD" in help_text.out and "--offline" in help_text.out
