"""The public Python API, driven in-process against the sandbox: what a notebook or a
pipeline does instead of shelling out to the CLI."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from clihelp import REPO, write_manifest

import batch_runner
from batch_runner import RunOptions, UsageError
from batch_runner.sandbox import Sandbox, SandboxConfig

FAST = SandboxConfig(queue_seconds=0.02, run_seconds=(0.05, 0.15))


def client_for(sb: Sandbox) -> batch_runner.WiroClient:
    return batch_runner.WiroClient(
        sb.api_key, sb.api_secret, base_url=sb.base_url, socket_url=sb.socket_url
    )


async def test_run_against_a_client_then_resume_sends_nothing(tmp_path: Path) -> None:
    manifest = batch_runner.load_manifest(write_manifest(tmp_path / "m.yaml", 5))
    out = tmp_path / "out"
    async with Sandbox(FAST) as sb, client_for(sb) as client:
        result = await batch_runner.run(manifest, client=client, out_dir=out)
        assert result.exit_code == 0 and result.succeeded == 5 and result.submitted == 5
        assert result.spent == pytest.approx(5 * 0.45)
        assert set(result.records) == {job.id for job in manifest.jobs}
        for record in result.records.values():
            assert record.status is batch_runner.JobStatus.SUCCEEDED
            [saved] = record.outputs
            assert (out / saved.path).stat().st_size == saved.size
        page = batch_runner.write_gallery(out, manifest)
        assert page == out / "index.html" and "5</b> succeeded" in page.read_text("utf-8")
        assert batch_runner.status(out)["counts"]["succeeded"] == 5
        again = await batch_runner.run(manifest, client=client, out_dir=out)
        assert again.exit_code == 0 and again.submitted == 0 and not again.changed
        assert sb.stats()["tasks_created"] == 5


def test_run_sync_starts_the_sandbox_in_process(tmp_path: Path) -> None:
    path = write_manifest(tmp_path / "m.yaml", 3)
    result = batch_runner.run_sync(
        path, sandbox=FAST, options=RunOptions(out_dir=tmp_path / "out", concurrency=2)
    )
    assert result.exit_code == 0 and result.counts["succeeded"] == 3
    assert batch_runner.read_ledger(tmp_path / "out").jobs.keys() == result.records.keys()


def test_options_precedence_caller_then_manifest_then_default(tmp_path: Path) -> None:
    plain = batch_runner.load_manifest(write_manifest(tmp_path / "a.yaml", 1))
    pinned = batch_runner.load_manifest(
        write_manifest(tmp_path / "b.yaml", 1, extra={"concurrency": 9, "output_dir": "there"})
    )
    assert RunOptions().resolved(plain).concurrency == 4
    assert RunOptions().resolved(plain).out_dir == Path("outputs/a")
    assert RunOptions().resolved(pinned).concurrency == 9
    assert RunOptions().resolved(pinned).out_dir == tmp_path / "there"
    chosen = RunOptions(concurrency=2, out_dir=tmp_path / "mine").resolved(pinned)
    assert (chosen.concurrency, chosen.out_dir) == (2, tmp_path / "mine")
    with pytest.raises(UsageError, match="concurrency"):
        RunOptions(concurrency=0)
    with pytest.raises(UsageError, match="verify"):
        RunOptions(verify="sometimes")


async def test_a_client_and_the_sandbox_together_are_refused(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.yaml", 1)
    async with Sandbox(FAST) as sb, client_for(sb) as client:
        with pytest.raises(UsageError, match="either a client"):
            await batch_runner.run(manifest, client=client, sandbox=True, out_dir=tmp_path / "o")
        assert sb.stats()["tasks_created"] == 0


async def test_a_shard_runs_only_its_jobs_in_its_own_folder(tmp_path: Path) -> None:
    manifest = batch_runner.load_manifest(write_manifest(tmp_path / "m.yaml", 12))
    mine = batch_runner.Shard(1, 3)
    async with Sandbox(FAST) as sb, client_for(sb) as client:
        result = await batch_runner.run(manifest, client=client, out_dir=tmp_path, shard="1/3")
    expected = {job.id for job in manifest.jobs if mine.owns(job.id)}
    assert set(result.records) == expected and result.exit_code == 0
    assert result.out_dir == tmp_path / "shards" / "1-of-3"
    assert result.shard_base == tmp_path and result.whole is manifest


async def test_signals_interrupt_cleanly_and_the_next_run_pays_nothing_twice(
    tmp_path: Path,
) -> None:
    """handle_signals=True: SIGINT ends the run with exit 130 and a recorded ledger; the
    tasks already on the service are picked up by id, not submitted again."""
    manifest = batch_runner.load_manifest(write_manifest(tmp_path / "m.yaml", 8))
    out = tmp_path / "out"
    async with Sandbox(SandboxConfig(queue_seconds=0.05, run_seconds=(0.6, 1.0))) as sb:
        async with client_for(sb) as client:

            async def interrupt_when_submitted() -> None:
                while sb.stats()["tasks_created"] < 3:
                    await asyncio.sleep(0.02)
                os.kill(os.getpid(), signal.SIGINT)

            poke = asyncio.create_task(interrupt_when_submitted())
            result = await batch_runner.run(
                manifest, client=client, out_dir=out, concurrency=3, handle_signals=True
            )
            await poke
            assert result.interrupted and result.exit_code == 130
            created = sb.stats()["tasks_created"]
            assert created >= 3 and batch_runner.read_ledger(out).runs[-1].exit_code == 130
            done = await batch_runner.run(manifest, client=client, out_dir=out)
        assert done.exit_code == 0 and done.succeeded == 8
        assert sb.stats()["tasks_created"] == 8  # the interrupted run's tasks were tracked
        assert sb.stats()["duplicate_tasks"] == 0
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_the_readme_notebook_example_runs_as_written(tmp_path: Path) -> None:
    """The README's Python example, run as a script from a folder holding the manifests."""
    readme = (REPO / "README.md").read_text("utf-8")
    section = readme.split("## Using it from Python", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None, "the README lost its Python example"
    shutil.copytree(REPO / "manifests", tmp_path / "manifests")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", code.group(1)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "0 5" in done.stdout  # exit code 0, five jobs succeeded
    assert (tmp_path / "outputs" / "demo" / "index.html").is_file()
    assert len(list((tmp_path / "outputs" / "demo").glob("*.mp4"))) == 5
