"""Sharding: one manifest across N worker processes sharing one account and one folder."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest
from clihelp import MakeBatch, finish, journal_events, kill, load_ledger, wait_until

from batch_runner.errors import UsageError
from batch_runner.ledger.shard import Shard, check_layout, parse_shard, shard_from_env, shard_of
from batch_runner.sandbox import SandboxConfig


def test_shard_of_is_stable_and_independent_of_order() -> None:
    ids = [f"job-{i}" for i in range(1000)]
    first = {i: shard_of(i, 7) for i in ids}
    assert {i: shard_of(i, 7) for i in reversed(ids)} == first
    # Adding jobs (and reordering) never moves existing ones: a shard's selection from a
    # grown manifest keeps exactly the jobs it had.
    shard = Shard(3, 7)
    grown = [f"new-{i}" for i in range(500)] + list(reversed(ids))
    kept = [i for i in shard.select([_Id(x) for x in grown]) if i.id in first]
    assert {j.id for j in kept} == {i for i in ids if first[i] == 3}
    sizes = [list(first.values()).count(k) for k in range(7)]
    assert min(sizes) > 100  # roughly even


class _Id:
    def __init__(self, job_id: str) -> None:
        self.id = job_id


def test_parse_shard_and_errors() -> None:
    assert parse_shard("2/4") == Shard(2, 4)
    for bad in ("4/4", "x/2", "1", "-1/3", "1/0"):
        with pytest.raises(UsageError):
            parse_shard(bad)


def test_array_job_environments() -> None:
    aws = {"AWS_BATCH_JOB_ARRAY_INDEX": "3", "AWS_BATCH_JOB_ARRAY_SIZE": "8"}
    assert shard_from_env(aws) == Shard(3, 8, "AWS Batch array job")
    slurm = {
        "SLURM_ARRAY_TASK_ID": "5",
        "SLURM_ARRAY_TASK_MIN": "1",
        "SLURM_ARRAY_TASK_COUNT": "10",
    }
    assert shard_from_env(slurm) == Shard(4, 10, "Slurm job array")
    assert shard_from_env({"JOB_COMPLETION_INDEX": "0"}, 3) == Shard(0, 3, "Kubernetes Indexed Job")
    k8s = {"JOB_COMPLETION_INDEX": "2", "BATCH_RUNNER_SHARD_COUNT": "4"}
    assert shard_from_env(k8s) == Shard(2, 4, "Kubernetes Indexed Job")
    with pytest.raises(UsageError, match="shard count"):
        shard_from_env({"JOB_COMPLETION_INDEX": "0"})
    assert shard_from_env({}) is None


def test_layout_refuses_mixed_shard_counts(tmp_path: Path) -> None:
    (tmp_path / "shards" / "0-of-3").mkdir(parents=True)
    check_layout(tmp_path, Shard(1, 3))
    with pytest.raises(UsageError, match="3 shards"):
        check_layout(tmp_path, Shard(0, 4))
    with pytest.raises(UsageError, match="sharded run"):
        check_layout(tmp_path, None)


async def test_workers_share_account_and_folder(batch: MakeBatch) -> None:
    config = SandboxConfig(queue_seconds=0.05, run_seconds=(0.2, 0.5), concurrency_limit=4)
    b = await batch(jobs=30, config=config)
    procs = [await b.start("--shard", f"{k}/3", "--concurrency", "3") for k in range(3)]
    # finish() reads the pipes (wait() alone could block on a full one) and shows stderr.
    ends = await asyncio.gather(*(finish(p, timeout=120) for p in procs))
    assert [e.code for e in ends] == [0, 0, 0], "\n".join(e.err[-2000:] for e in ends)
    stats = b.stats()
    assert stats["tasks_created"] == 30
    assert stats["duplicate_tasks"] == 0
    assert stats["max_in_flight"] <= 4
    seen: list[str] = []
    for k in range(3):
        ledger = load_ledger(b.out / "shards" / f"{k}-of-3")
        assert all(shard_of(j, 3) == k for j in ledger["jobs"])
        seen.extend(ledger["jobs"])
    assert sorted(seen) == [f"job-{i:04d}" for i in range(30)]
    page = (b.out / "index.html").read_text("utf-8")
    assert all(f"job-{i:04d}" in page for i in range(30))
    assert "shards/0-of-3/" in page
    data = await b.status()
    assert data["shard_count"] == 3 and data["jobs"] == 30
    assert data["counts"]["succeeded"] == 30
    assert data["shards_not_reported"] == [] and data["shards_active"] == []
    mixed = await b.run("--shard", "0/2")
    assert mixed.code == 2 and "3 shards" in mixed.err


async def test_killed_worker_resumes_its_shard_only(batch: MakeBatch) -> None:
    b = await batch(jobs=24, config=SandboxConfig(queue_seconds=0.1, run_seconds=(0.8, 1.2)))
    shard_dir = b.out / "shards" / "1-of-2"
    slurm = {"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "2"}
    worker = await b.start("--concurrency", "3", env={**b.env, **slurm})
    await wait_until(lambda: journal_events(shard_dir, "submitted") >= 3, timeout=30)
    kill(worker, signal.SIGKILL)
    await worker.wait()
    again = await b.run("--concurrency", "3", "--shard", "1/2")
    assert again.code == 0, again.err
    ledger = load_ledger(shard_dir)
    mine = [f"job-{i:04d}" for i in range(24) if shard_of(f"job-{i:04d}", 2) == 1]
    assert sorted(ledger["jobs"]) == mine
    assert b.stats()["tasks_created"] == len(mine)
    assert b.stats()["duplicate_tasks"] == 0
    assert not (b.out / "shards" / "0-of-2").exists()
