"""Publishing to object storage (``--publish``) against a real S3 API on loopback (moto's
server mode), through the CLI as users run it: uploads checked and recorded, resumes that
send nothing twice, a ``kill -9`` in the middle of uploads, a bucket that refuses writes."""

from __future__ import annotations

import hashlib
import json
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest
from clihelp import (
    check_outputs_match_service,
    cli_env,
    kill,
    load_ledger,
    run_cli,
    start_cli,
    wait_until,
    write_manifest,
)
from s3help import SECRET, LocalS3, local_s3

from batch_runner._resources import schemas_dir
from batch_runner.errors import UsageError
from batch_runner.sandbox import Sandbox, SandboxConfig

FAST = SandboxConfig(queue_seconds=0.05, run_seconds=(0.1, 0.3))


@pytest.fixture(scope="module")
def s3() -> Iterator[LocalS3]:
    with local_s3() as server:
        yield server


def env_for(sb: Sandbox, s3: LocalS3, **extra: str) -> dict[str, str]:
    env = cli_env(sb, **s3.env())
    env.update(extra)
    return env


def assert_ledger_valid(out: Path) -> dict:
    ledger = load_ledger(out)
    schema = json.loads((schemas_dir() / "ledger.schema.json").read_text("utf-8"))
    jsonschema.Draft202012Validator(schema).validate(ledger)
    return ledger


def assert_published(out: Path, s3: LocalS3, bucket: str, prefix: str) -> int:
    """Every succeeded job's outputs are in the bucket, byte for byte, recorded with their
    object URL, size, sha256 and the store's ETag. Returns how many objects."""
    ledger = assert_ledger_valid(out)
    client = s3.client()
    checked = 0
    for job_id, rec in ledger["jobs"].items():
        assert rec["status"] == "succeeded", job_id
        published = {p["name"]: p for p in rec["published"]}
        for saved in rec["outputs"]:
            entry = published[saved["name"]]
            key = f"{prefix}/{saved['path']}"
            assert entry["url"] == f"s3://{bucket}/{key}"
            assert entry["sha256"] == saved["sha256"] and entry["size"] == saved["size"]
            body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
            assert body == (out / saved["path"]).read_bytes()
            meta = s3.metadata(bucket, key)
            assert meta["etag"] == entry["etag"]
            assert meta["meta"]["sha256"] == saved["sha256"]
            checked += 1
    return checked


async def test_publish_uploads_checks_records_and_resume_sends_nothing(
    tmp_path: Path, s3: LocalS3
) -> None:
    bucket = s3.bucket("pub")
    manifest = write_manifest(tmp_path / "m.yaml", 6)
    out = tmp_path / "out"
    target = f"s3://{bucket}/videos/launch"
    args = ("run", str(manifest), "--out", str(out), "--publish", target)
    async with Sandbox(FAST) as sb:
        env = env_for(sb, s3)
        done = await run_cli(*args, "--publish-public-url", "https://cdn.example.com/v", env=env)
        assert done.code == 0, done.err
        assert "published: 6 jobs in " + target in done.out
        assert check_outputs_match_service(out, sb) == 6
        assert assert_published(out, s3, bucket, "videos/launch") == 6
        ledger = load_ledger(out)
        entry = ledger["jobs"]["job-0000"]["published"][0]
        assert entry["public_url"] == "https://cdn.example.com/v/job-0000.mp4"
        assert ledger["runs"][-1]["publish"] == target
        assert all(n == 1 for n in s3.versions(bucket).values())
        puts = len(s3.object_puts(bucket))
        assert puts == 6

        # A resume sends nothing: the ledger says every object is there with this content.
        before = len(s3.seen)
        again = await run_cli(*args, env=env)
        assert again.code == 0, again.err
        assert len(s3.seen) == before  # not even a HEAD in the default (quick) mode

        # --verify full asks the store about every object, and still uploads nothing.
        full = await run_cli(*args, "--verify", "full", env=env)
        assert full.code == 0, full.err
        assert len(s3.object_puts(bucket)) == puts
        assert len(s3.seen) > before
        assert all(n == 1 for n in s3.versions(bucket).values())

        status = await run_cli("status", str(out), "--json", env=env)
        figures = json.loads(status.out)["publish"]
        assert figures == {
            "target": target, "published_jobs": 6, "unpublished_jobs": 0, "objects": 6,
            "bytes": sum(p.stat().st_size for p in out.glob("*.mp4")),
        }  # fmt: skip


async def test_resume_uploads_again_what_is_missing_or_different(
    tmp_path: Path, s3: LocalS3
) -> None:
    bucket = s3.bucket("fix")
    manifest = write_manifest(tmp_path / "m.yaml", 4)
    out = tmp_path / "out"
    args = ("run", str(manifest), "--out", str(out), "--publish", f"s3://{bucket}/p")
    async with Sandbox(FAST) as sb:
        env = env_for(sb, s3)
        assert (await run_cli(*args, env=env)).code == 0
        client = s3.client()
        client.delete_object(Bucket=bucket, Key="p/job-0001.mp4")  # gone from the bucket
        client.put_object(Bucket=bucket, Key="p/job-0002.mp4", Body=b"someone else's bytes")
        puts = len(s3.object_puts(bucket))
        done = await run_cli(*args, "--verify", "full", env=env)
        assert done.code == 0, done.err
        assert len(s3.object_puts(bucket)) == puts + 2  # exactly the two bad ones
        assert assert_published(out, s3, bucket, "p") == 4
        assert sb.stats()["tasks_created"] == 4


async def test_kill_9_during_uploads_then_resume_uploads_nothing_twice(
    tmp_path: Path, s3: LocalS3
) -> None:
    bucket = s3.bucket("kill")
    jobs = 12
    manifest = write_manifest(tmp_path / "m.yaml", jobs)
    out = tmp_path / "out"
    args = (
        "run", str(manifest), "--out", str(out), "--publish", f"s3://{bucket}/k",
        "--publish-concurrency", "2", "--concurrency", "6",
    )  # fmt: skip
    s3.put_delay = 0.4  # every upload is in flight long enough to be killed in the middle
    try:
        async with Sandbox(FAST) as sb:
            env = env_for(sb, s3)
            proc = await start_cli(*args, env=env)
            await wait_until(lambda: len(s3.versions(bucket)) >= 3, timeout=60, step=0.1)
            kill(proc)
            await proc.wait()
            assert proc.returncode == -signal.SIGKILL
            uploaded_before = len(s3.versions(bucket))
            assert uploaded_before < jobs  # really killed in the middle of publishing
            s3.put_delay = 0.0
            done = await run_cli(*args, env=env, timeout=120)
            assert done.code == 0, done.err
            assert sb.stats()["tasks_created"] == jobs  # paid once
            assert check_outputs_match_service(out, sb) == jobs
    finally:
        s3.put_delay = 0.0
    versions = s3.versions(bucket)
    assert len(versions) == jobs
    assert set(versions.values()) == {1}, versions  # nothing uploaded twice
    assert len(s3.object_puts(bucket)) == jobs  # and no PUT answered twice
    assert assert_published(out, s3, bucket, "k") == jobs


async def test_bucket_that_refuses_writes_keeps_files_and_exits_4(
    tmp_path: Path, s3: LocalS3
) -> None:
    bucket = s3.bucket("ro")
    manifest = write_manifest(tmp_path / "m.yaml", 3)
    out = tmp_path / "out"
    target = f"s3://{bucket}/p"
    args = ("run", str(manifest), "--out", str(out), "--publish", target)
    async with Sandbox(FAST) as sb:
        with s3.read_only_user() as reader:
            env = cli_env(sb, **reader)
            done = await run_cli(*args, env=env)
            text = await run_cli("status", str(out), env=env)
            status = await run_cli("status", str(out), "--json", env=env)
            as_json = await run_cli(*args, "--log-format", "json", env=env)
        assert done.code == 4, done.out + done.err
        assert "refused" in done.err and "publishing to " + target + " stopped" in done.err
        assert "not published: 3 succeeded jobs" in done.out
        assert "work is left" in done.out
        assert check_outputs_match_service(out, sb) == 3  # the local files are intact
        assert {r["status"] for r in load_ledger(out)["jobs"].values()} == {"succeeded"}
        figures = json.loads(status.out)["publish"]
        assert figures["unpublished_jobs"] == 3 and figures["published_jobs"] == 0
        assert "3 succeeded jobs not published" in text.out
        assert as_json.code == 4
        summary = json.loads(as_json.out)
        assert summary["outcome"] == "work_left"
        assert summary["published"]["unpublished_jobs"] == 3
        assert "refused" in summary["published"]["stopped"]
        assert s3.versions(bucket) == {}
        # Credentials never reach a message, the ledger or the journal.
        secrets = [reader["AWS_SECRET_ACCESS_KEY"], SECRET]
        written = [done.out, done.err, as_json.out, as_json.err, text.out, status.out]
        written += [p.read_text("utf-8", "replace") for p in out.iterdir() if p.is_file()]
        for secret in secrets:
            assert all(secret not in w for w in written)

        # Writes allowed again: the next run publishes everything, pays nothing.
        again = await run_cli(*args, env=env_for(sb, s3))
        assert again.code == 0, again.err
        assert sb.stats()["tasks_created"] == 3
    assert assert_published(out, s3, bucket, "p") == 3


async def test_multipart_upload_is_checked_and_found_again(tmp_path: Path, s3: LocalS3) -> None:
    from batch_runner.engine.objstore import open_target, stat, upload_verified

    bucket = s3.bucket("big")
    data = bytes(range(256)) * (12 * 4096)  # 12 MiB: three parts of 5 MiB
    path = tmp_path / "big.mp4"
    path.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    target = open_target(f"s3://{bucket}/deep/prefix")  # the environment: see _s3_env
    assert await stat(target, "big.mp4") is None
    remote = await upload_verified(
        target, "big.mp4", path, size=len(data), sha256=sha, part_size=5 * 2**20
    )
    assert remote.etag is not None and remote.etag.endswith('-3"')  # really multipart
    got = s3.client().get_object(Bucket=bucket, Key="deep/prefix/big.mp4")
    assert got["Body"].read() == data and got["ContentType"] == "video/mp4"
    again = await stat(target, "big.mp4")
    assert again is not None and again.matches(len(data), sha)
    assert not again.matches(len(data), "0" * 64) and not again.matches(len(data) - 1, sha)


@pytest.fixture(autouse=True)
def _s3_env(monkeypatch: pytest.MonkeyPatch, s3: LocalS3) -> None:
    """The in-process store calls read the same variables as the CLI."""
    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)


async def test_library_run_publishes_to_a_local_folder(tmp_path: Path) -> None:
    import batch_runner
    from batch_runner import RunOptions

    manifest = write_manifest(tmp_path / "m.yaml", 3)
    store = tmp_path / "store"
    options = RunOptions(out_dir=tmp_path / "out", publish=store.as_uri())
    result = await batch_runner.run(manifest, options=options, sandbox=FAST)
    assert result.exit_code == 0 and result.uploaded == 3
    assert result.published is not None and result.published.published_jobs == 3
    for record in result.records.values():
        (entry,) = record.published
        assert (store / entry.path).read_bytes() == (tmp_path / "out" / entry.path).read_bytes()
    again = await batch_runner.run(manifest, options=options, sandbox=FAST)
    assert again.exit_code == 0 and again.uploaded == 0


@pytest.mark.parametrize(
    "url",
    [
        "ftp://host/x",
        "s3://AKIAX:" + SECRET + "@bucket/prefix",
        "https://acct.blob.core.windows.net/c?sv=2024&sig=" + SECRET,
        "s3://",
        "prefix-without-scheme",
    ],
)
async def test_publish_urls_that_cannot_be_targets_exit_2_first(tmp_path: Path, url: str) -> None:
    manifest = write_manifest(tmp_path / "m.yaml", 1)
    async with Sandbox(FAST) as sb:
        done = await run_cli(
            "run", str(manifest), "--out", str(tmp_path / "o"), "--publish", url, env=cli_env(sb)
        )
        assert sb.stats()["tasks_created"] == 0
    assert done.code == 2, done.err
    assert SECRET not in done.err + done.out
    assert not (tmp_path / "o").exists()


def test_missing_extra_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from batch_runner.engine.objstore import open_target

    monkeypatch.setitem(sys.modules, "obstore", None)
    monkeypatch.setitem(sys.modules, "obstore.store", None)
    with pytest.raises(UsageError, match=r"batch-runner\[storage\]"):
        open_target("s3://bucket/prefix")


async def test_deadline_leaves_uploads_for_the_next_run(tmp_path: Path, s3: LocalS3) -> None:
    bucket = s3.bucket("late")
    manifest = write_manifest(tmp_path / "m.yaml", 4)
    out = tmp_path / "out"
    args = ("run", str(manifest), "--out", str(out), "--publish", f"s3://{bucket}/d")
    s3.put_delay = 1.5  # slower than the deadline allows for four uploads one at a time
    try:
        async with Sandbox(FAST) as sb:
            env = env_for(sb, s3)
            late = await run_cli(
                *args, "--publish-concurrency", "1", "--deadline", "3", env=env, timeout=60
            )
            assert late.code == 4, late.out + late.err
            assert "the deadline was reached with uploads left" in late.err
            left = json.loads((await run_cli("status", str(out), "--json", env=env)).out)
            assert left["publish"]["unpublished_jobs"] > 0
            s3.put_delay = 0.0
            done = await run_cli(*args, env=env)
            assert done.code == 0, done.err
            assert sb.stats()["tasks_created"] == 4
    finally:
        s3.put_delay = 0.0
    assert set(s3.versions(bucket).values()) == {1}  # the upload cut off was not repeated
    assert assert_published(out, s3, bucket, "d") == 4
