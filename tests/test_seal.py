"""The seal of a finished folder (``engine/seal.py``): an unchanged re-run skips the manifest
and the ledger, and anything that changed takes the full path.

Each test runs the real CLI as a subprocess against the sandbox: a first run seals the
folder, then a change (or none) and a second run, whose path is told by its log line
``(sealed: nothing changed since the last run)`` and by what the sandbox was asked.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import orjson
import yaml
from clihelp import Batch, MakeBatch, journal_events
from test_json_output import json_lines, summary_of

from batch_runner.engine.seal import SEAL_NAME, read_seal
from batch_runner.sandbox import SandboxConfig

SEALED = "sealed: nothing changed since the last run"


async def sealed_batch(batch: MakeBatch, jobs: int = 3, **kwargs: object) -> Batch:
    b = await batch(jobs=jobs, **kwargs)  # type: ignore[arg-type]
    first = await b.run()
    assert first.code == 0, first.err
    assert SEALED not in first.err
    assert read_seal(b.out) is not None, "a run where every job succeeded seals its folder"
    return b


async def test_an_unchanged_rerun_is_sealed_journalled_and_sends_nothing(
    batch: MakeBatch,
) -> None:
    b = await sealed_batch(batch)
    requests = b.stats()["requests"]
    again = await b.run()
    assert again.code == 0, again.err
    assert SEALED in again.err and "3 jobs: 3 succeeded" in again.out
    assert b.stats()["requests"] == requests, "the sealed path asks the service nothing"
    assert journal_events(b.out, "run_started") == 1 and journal_events(b.out, "run_ended") == 1
    status = await b.status()
    assert status["runs"] == 2 and status["counts"]["succeeded"] == 3
    assert status["last_exit_code"] == 0
    third = await b.run("--log-format", "json")
    assert third.code == 0, third.err
    lines = json_lines(third.err)  # every line valid for the events schema
    started = next(x for x in lines if x.get("event") == "run_started")
    assert started["sealed"] is True and started["verify"] == 3
    assert lines[-1]["event"] == "run_ended"
    summary = summary_of(third)  # valid for the summary schema, equal to run_ended's
    assert summary["exit_code"] == 0 and summary["counts"]["succeeded"] == 3
    assert summary["submitted"] == 0 and summary["total"] == 3
    assert (await b.status())["runs"] == 3
    # the next full run folds the journal the sealed runs left into the snapshot
    full = await b.run("--verify", "full")
    assert full.code == 0 and SEALED not in full.err
    assert not (b.out / "journal.jsonl").exists() and (await b.status())["runs"] == 4


async def test_without_out_the_seal_is_looked_for_where_the_manifest_writes(
    batch: MakeBatch, tmp_path: Path
) -> None:
    """Without ``--out`` the sealed path looks in the manifest's ``output_dir``, and takes
    only a seal that a run without ``--out`` made: a folder sealed by a run with ``--out``
    (here the default folder, where a run would write if the manifest named none) is that
    run's, and the work of the manifest's own folder is still done."""
    b = await batch(jobs=3, extra={"output_dir": "declared"})
    cwd = tmp_path / "work"
    flagged = cwd / "outputs" / b.manifest.stem
    first = await b.run(out=flagged)
    assert first.code == 0 and read_seal(flagged) is not None, first.err
    plain = ("run", str(b.manifest), "--log-format", "text")
    second = await b.cli(*plain, cwd=cwd)
    assert second.code == 0 and SEALED not in second.err, second.err
    declared = b.manifest.parent / "declared"
    assert b.stats()["tasks_created"] == 6 and read_seal(declared) is not None
    requests = b.stats()["requests"]
    third = await b.cli(*plain, cwd=cwd)
    assert third.code == 0 and SEALED in third.err and "3 jobs: 3 succeeded" in third.out
    assert b.stats()["requests"] == requests, "the sealed path asks the service nothing"
    again = await b.run(out=declared)
    assert again.code == 0 and SEALED not in again.err, "sealed without --out: look again"


async def test_a_changed_output_takes_the_full_path_and_is_fetched_again(
    batch: MakeBatch,
) -> None:
    b = await sealed_batch(batch)
    victim = sorted(b.out.glob("*.mp4"))[0]
    victim.write_bytes(victim.read_bytes()[:100])
    again = await b.run()
    assert again.code == 0, again.err
    assert SEALED not in again.err
    assert b.stats()["tasks_created"] == 3, "fetched again, never resubmitted"
    assert b.outputs_match_service() == 3
    # and the folder is sealed again for the next one
    assert SEALED in (await b.run()).err


async def test_a_missing_output_takes_the_full_path(batch: MakeBatch) -> None:
    b = await sealed_batch(batch)
    sorted(b.out.glob("*.mp4"))[1].unlink()
    again = await b.run()
    assert again.code == 0 and SEALED not in again.err
    assert b.outputs_match_service() == 3 and b.stats()["tasks_created"] == 3


async def test_an_edited_manifest_runs_its_new_job(batch: MakeBatch) -> None:
    b = await sealed_batch(batch)
    data = yaml.safe_load(b.manifest.read_text())
    data["jobs"].append({**data["jobs"][0], "id": "added", "prompt": "a new one"})
    b.manifest.write_text(yaml.safe_dump(data))
    again = await b.run()
    assert again.code == 0, again.err
    assert SEALED not in again.err and b.stats()["tasks_created"] == 4


async def test_a_touched_manifest_takes_the_full_path_once(batch: MakeBatch) -> None:
    """Same bytes, new modification time: the key (a hash of the bytes) still holds, but
    the manifest's recorded identity does not; the full path then seals it anew."""
    b = await sealed_batch(batch)
    stamp = b.manifest.stat().st_mtime + 10
    os.utime(b.manifest, (stamp, stamp))
    assert SEALED not in (await b.run()).err
    assert SEALED in (await b.run()).err
    assert b.stats()["tasks_created"] == 3


async def test_flags_that_change_the_work_take_the_full_path(batch: MakeBatch) -> None:
    b = await sealed_batch(batch)
    for flags in (("--verify", "full"), ("--dry-run",), ("--shard", "0/1")):
        done = await b.run(*flags)
        assert SEALED not in done.err, flags
    other = b.out.parent / "elsewhere"
    shutil.copytree(b.out, other)
    copied = await b.run(out=other)
    assert copied.code == 0 and SEALED not in copied.err, "a copy has another ledger file"
    assert SEALED in (await b.run(out=other)).err and b.stats()["tasks_created"] == 3
    env = {**b.env, "WIRO_API_BASE": b.env["WIRO_API_BASE"].rstrip("/") + "/"}
    assert SEALED not in (await b.run(env=env)).err, "another service spelling: look again"
    assert SEALED not in (await b.run()).err, "sealed for the other spelling: look again"
    assert SEALED in (await b.run()).err
    cache = {**b.env, "BATCH_RUNNER_CACHE_DIR": str(b.out.parent / "other-cache")}
    assert SEALED not in (await b.run(env=cache)).err, "another definitions cache: look again"


async def test_a_data_file_edit_takes_the_full_path(batch: MakeBatch, tmp_path: Path) -> None:
    b = await batch(jobs=1)
    rows = tmp_path / "rows.csv"
    rows.write_text("id,prompt\nrow-1,a cat\nrow-2,a dog\n")
    b.manifest.write_text(
        "model: PixVerse/image-to-video-v5\n"
        "defaults:\n  inputImageUrl: https://example.com/a.jpg\n"
        "jobs_from: rows.csv\n"
    )
    assert (await b.run()).code == 0
    assert SEALED in (await b.run()).err
    rows.write_text("id,prompt\nrow-1,a cat\nrow-2,a dog\nrow-3,a bird\n")
    again = await b.run()
    assert again.code == 0 and SEALED not in again.err
    assert b.stats()["tasks_created"] == 3


async def test_a_definition_added_in_front_takes_the_full_path(batch: MakeBatch) -> None:
    """A project ``models/`` folder now holds the model: the manifest's jobs would be
    checked against that definition, so the seal no longer holds."""
    b = await sealed_batch(batch)
    shipped = Path(read_seal(b.out).lookups[-1][2])  # type: ignore[union-attr,arg-type]
    target = b.manifest.parent / "models" / shipped.parent.name / shipped.name
    target.parent.mkdir(parents=True)
    shutil.copy(shipped, target)
    again = await b.run()
    assert again.code == 0 and SEALED not in again.err


async def test_no_seal_after_failures_and_a_broken_seal_is_ignored(batch: MakeBatch) -> None:
    from batch_runner.sandbox import FaultConfig

    failing = FaultConfig(generation_failure=1.0)
    config = SandboxConfig(queue_seconds=0.05, run_seconds=(0.1, 0.2), faults=failing)
    b = await batch(jobs=3, config=config)
    done = await b.run()
    assert done.code == 1
    assert read_seal(b.out) is None
    (b.out / SEAL_NAME).write_bytes(b'{"version": 1, "key": "x", "seq": "nope"}')
    assert (await b.run()).code == 1
    (b.out / SEAL_NAME).write_bytes(b"\x00garbage")
    assert (await b.run()).code == 1


async def test_a_journal_left_by_another_run_takes_the_full_path(batch: MakeBatch) -> None:
    b = await sealed_batch(batch)
    seal = orjson.loads((b.out / SEAL_NAME).read_bytes())
    journal = b.out / "journal.jsonl"
    line = {"seq": seal["seq"] + 1, "t": 1.0, "type": "run_started", "job": None, "pid": 1}
    journal.write_bytes(orjson.dumps(line) + b"\n")
    again = await b.run()
    assert again.code == 0 and SEALED not in again.err
    assert (await b.status())["runs"] == 3


async def test_a_published_folder_is_sealed_with_its_figures_and_a_new_target_is_not(
    tmp_path: Path,
) -> None:
    from clihelp import cli_env, run_cli, write_manifest
    from s3help import local_s3

    from batch_runner.sandbox import Sandbox

    manifest = write_manifest(tmp_path / "m.yaml", 4)
    out = tmp_path / "out"
    with local_s3() as s3:
        bucket = s3.bucket("seal")
        target = f"s3://{bucket}/first"
        args = ("run", str(manifest), "--out", str(out))
        async with Sandbox(SandboxConfig(queue_seconds=0.05, run_seconds=(0.1, 0.3))) as sb:
            env = cli_env(sb, **s3.env())
            first = await run_cli(*args, "--publish", target, env=env)
            assert first.code == 0, first.err
            assert read_seal(out) is not None
            seen = len(s3.seen)
            again = await run_cli(*args, "--publish", target, env=env)
            assert again.code == 0 and SEALED in again.err, again.err
            assert "published: 4 jobs in " + target in again.out
            assert len(s3.seen) == seen, "the sealed path asks the store nothing"
            status = json.loads((await run_cli("status", str(out), "--json", env=env)).out)
            assert status["publish"]["published_jobs"] == 4 and status["runs"] == 2
            other = f"s3://{bucket}/second"
            moved = await run_cli(*args, "--publish", other, env=env)
            assert moved.code == 0 and SEALED not in moved.err
            assert "published: 4 jobs in " + other in moved.out
            assert len(s3.object_puts(bucket)) == 8
            plain = await run_cli(*args, env=env)
            assert plain.code == 0 and SEALED not in plain.err, "no --publish: another key"
