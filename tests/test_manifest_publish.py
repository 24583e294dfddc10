"""The ``publish:`` manifest key: checked with file:line like every manifest error, resolved
with the flag winning (``RunOptions.resolved``), and a run with it publishes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from clihelp import cli_env, load_ledger, run_cli, write_manifest

from batch_runner.engine.options import RunOptions
from batch_runner.errors import ManifestError, UsageError
from batch_runner.manifest.loader import load_manifest
from batch_runner.models.resolver import Resolver
from batch_runner.sandbox import Sandbox, SandboxConfig

FAST = SandboxConfig(queue_seconds=0.05, run_seconds=(0.1, 0.3))
SECRET = "wJalrXUtnFEMI0K7MDENGbPxRfiCYzEXAMPLEKEY"


def offline() -> Resolver:
    return Resolver(offline=True)


def manifest_with(tmp_path: Path, publish: object, jobs: int = 1) -> Path:
    return write_manifest(tmp_path / "m.yaml", jobs, extra={"publish": publish})


@pytest.mark.parametrize(
    "url",
    [
        "s3://bucket/videos/launch",
        "s3://bucket",
        "gs://bucket/prefix/",
        "az://container/prefix",
        "file:///mnt/share/videos",
        "https://acct.blob.core.windows.net/container/prefix",
    ],
)
def test_publish_urls_are_read_from_the_manifest(tmp_path: Path, url: str) -> None:
    manifest = load_manifest(manifest_with(tmp_path, url), resolver=offline())
    assert manifest.publish == url


def test_a_manifest_without_publish_publishes_nothing(tmp_path: Path) -> None:
    manifest = load_manifest(write_manifest(tmp_path / "m.yaml", 1), resolver=offline())
    assert manifest.publish is None
    assert RunOptions().resolved(manifest).publish is None


@pytest.mark.parametrize(
    "value",
    [
        "ftp://host/x",
        f"s3://AKIAX:{SECRET}@bucket/prefix",
        f"https://acct.blob.core.windows.net/c?sv=2024&sig={SECRET}",
        "s3://",
        "s3://bucket/prefix#frag",
        "prefix-without-scheme",
        "file://relative/path",
        5,
        ["s3://a/b"],
    ],
)
def test_bad_publish_values_are_manifest_errors_with_their_line(
    tmp_path: Path, value: object
) -> None:
    path = manifest_with(tmp_path, value)
    line = next(
        n for n, text in enumerate(path.read_text("utf-8").splitlines(), 1)
        if text.startswith("publish:")
    )  # fmt: skip
    with pytest.raises(ManifestError) as caught:
        load_manifest(path, resolver=offline())
    (issue,) = caught.value.issues
    assert issue.startswith(f"{path}:{line}: field 'publish': "), issue
    if isinstance(value, str):
        assert "expected an object-store URL such as s3://bucket/prefix" in issue
    assert SECRET not in issue


def test_the_flag_wins_over_the_manifest(tmp_path: Path) -> None:
    manifest = load_manifest(manifest_with(tmp_path, "s3://from-manifest/p"), resolver=offline())
    assert RunOptions().resolved(manifest).publish == "s3://from-manifest/p"
    flagged = RunOptions(publish="gs://from-flag/p").resolved(manifest)
    assert flagged.publish == "gs://from-flag/p"


def test_the_resolved_target_is_checked_like_the_flag(tmp_path: Path) -> None:
    """A manifest value reaches RunOptions' own checks (here with a public URL that is not
    http(s), which only the flag can give)."""
    manifest = load_manifest(manifest_with(tmp_path, "s3://bucket/p"), resolver=offline())
    with pytest.raises(UsageError, match="--publish-public-url must be an http"):
        RunOptions(publish_public_url="ftp://cdn").resolved(manifest)


async def test_validate_names_the_line_of_a_bad_publish_key(tmp_path: Path) -> None:
    path = manifest_with(tmp_path, f"s3://AKIAX:{SECRET}@bucket/prefix")
    async with Sandbox(FAST) as sb:
        done = await run_cli("validate", str(path), env=cli_env(sb))
    assert done.code == 2
    assert f"{path}:" in done.err and "field 'publish': expected an object-store URL" in done.err
    assert SECRET not in done.err + done.out


async def test_a_run_publishes_to_the_manifests_store_and_the_flag_overrides_it(
    tmp_path: Path,
) -> None:
    store, other, out = tmp_path / "store", tmp_path / "other", tmp_path / "out"
    path = manifest_with(tmp_path, store.as_uri(), jobs=2)
    async with Sandbox(FAST) as sb:
        env = cli_env(sb)
        done = await run_cli("run", str(path), "--out", str(out), "-q", env=env)
        assert done.code == 0, done.err
        ledger = load_ledger(out)
        assert [run["publish"] for run in ledger["runs"]] == [store.as_uri()]
        for job_id, record in ledger["jobs"].items():
            (entry,) = record["published"]
            assert entry["url"] == f"{store.as_uri()}/{entry['path']}", job_id
            assert (store / entry["path"]).read_bytes() == (out / entry["path"]).read_bytes()
        flagged = await run_cli(
            "run", str(path), "--out", str(out), "--publish", other.as_uri(),
            "--log-format", "json", env=env,
        )  # fmt: skip
        assert flagged.code == 0, flagged.err
        summary = json.loads(flagged.out)
        assert summary["published"]["target"] == other.as_uri()
        assert summary["published"]["uploaded"] == 2
        assert sb.stats()["tasks_created"] == 2  # nothing generated twice
    ledger = load_ledger(out)
    assert [run["publish"] for run in ledger["runs"]] == [store.as_uri(), other.as_uri()]
    for record in ledger["jobs"].values():
        (entry,) = record["published"]
        assert entry["url"].startswith(other.as_uri() + "/")
        assert (other / entry["path"]).read_bytes() == (out / entry["path"]).read_bytes()
