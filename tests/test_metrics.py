"""Prometheus metrics: the textfile during and after a run, read back with prometheus-client's
own parser, and the push to a Pushgateway (a real HTTP server in the test)."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path
from typing import Any

from aiohttp import web
from clihelp import cli_env, load_ledger, run_cli, start_cli, wait_until, write_manifest
from clihelp import finish as finish_cli
from prometheus_client.parser import text_string_to_metric_families

from batch_runner.sandbox import FaultConfig, Sandbox, SandboxConfig

FAST = SandboxConfig(queue_seconds=0.05, run_seconds=(0.1, 0.3))


def parse(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Sample name -> {sorted labels: value}, by prometheus-client's parser."""
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            found.setdefault(sample.name, {})[labels] = sample.value
    return found


def one(metrics: dict[str, Any], name: str, **labels: str) -> float:
    key = tuple(sorted({"batch": "m", **labels}.items()))
    value: float = metrics[name][key]
    return value


async def test_metrics_file_during_and_at_the_end(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.yaml", 6)
    out, prom = tmp_path / "out", tmp_path / "textfile" / "batch.prom"
    prom.parent.mkdir()
    config = SandboxConfig(queue_seconds=0.1, run_seconds=(1.5, 2.5)).but(
        faults=FaultConfig(drop_after_create=0.5), seed=4
    )
    async with Sandbox(config) as sb:
        proc = await start_cli(
            "run", str(manifest), "--out", str(out), "--metrics-file", str(prom),
            "--metrics-interval", "0.2", "--reconcile-delay", "0", "--log-format", "json",
            env=cli_env(sb),
        )  # fmt: skip

        def in_flight() -> bool:
            if not prom.exists():
                return False
            during = parse(prom.read_text("utf-8"))
            return one(during, "batch_runner_tasks_in_flight") > 0

        await wait_until(in_flight, timeout=30)
        during = parse(prom.read_text("utf-8"))
        assert one(during, "batch_runner_run_active") == 1
        assert one(during, "batch_runner_exit_code") == -1
        assert one(during, "batch_runner_run_end_timestamp_seconds") == 0
        done = await finish_cli(proc)
    assert done.code == 0, done.err
    after = parse(prom.read_text("utf-8"))
    ledger = load_ledger(out)
    sizes = [o["size"] for r in ledger["jobs"].values() for o in r["outputs"]]
    assert one(after, "batch_runner_exit_code") == 0
    assert one(after, "batch_runner_run_active") == 0
    assert one(after, "batch_runner_jobs", status="succeeded") == 6
    assert one(after, "batch_runner_jobs", status="failed") == 0
    assert one(after, "batch_runner_tasks_in_flight") == 0
    assert one(after, "batch_runner_outputs_saved_total") == 6
    assert one(after, "batch_runner_output_bytes_saved_total") == sum(sizes)
    spent = sum(r["cost"] or 0 for r in ledger["jobs"].values())
    assert abs(one(after, "batch_runner_spent_usd") - spent) < 1e-9
    events = [json.loads(line) for line in done.err.splitlines()]
    reconciled = sum(1 for e in events if e["event"] == "reconciled")
    assert reconciled > 0  # the faults made some /Run calls uncertain
    assert one(after, "batch_runner_reconciliations_total") == reconciled
    assert one(after, "batch_runner_retries_total") == sum(
        1 for e in events if e["event"] == "retry"
    )
    start = one(after, "batch_runner_run_start_timestamp_seconds")
    end = one(after, "batch_runner_run_end_timestamp_seconds")
    assert 0 < start <= end
    assert one(after, "batch_runner_last_success_timestamp_seconds") == end
    assert one(after, "batch_runner_last_job_success_timestamp_seconds") <= end
    assert stat.S_IMODE(prom.stat().st_mode) == 0o644  # node_exporter must read it
    assert sorted(p.name for p in prom.parent.iterdir()) == ["batch.prom"]  # no temp left
    summary = json.loads(done.out)
    assert summary["metrics"] == {"file": str(prom), "error": None, "pushgateway": None,
                                  "pushed": None}  # fmt: skip


async def test_a_failed_run_keeps_the_last_success_time(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.yaml", 2)
    out, prom = tmp_path / "out", tmp_path / "m.prom"
    args = ("run", str(manifest), "--out", str(out), "--metrics-file", str(prom))
    async with Sandbox(FAST) as sb:
        assert (await run_cli(*args, env=cli_env(sb))).code == 0
        first = one(parse(prom.read_text("utf-8")), "batch_runner_last_success_timestamp_seconds")
        assert first > 0
        more = write_manifest(tmp_path / "m.yaml", 4)
        sb.set_faults(FaultConfig(generation_failure=1.0))
        failed = await run_cli("run", str(more), "--out", str(out), "--metrics-file", str(prom),
                               env=cli_env(sb))  # fmt: skip
    assert failed.code == 1
    after = parse(prom.read_text("utf-8"))
    assert one(after, "batch_runner_exit_code") == 1
    assert one(after, "batch_runner_last_success_timestamp_seconds") == first
    assert one(after, "batch_runner_jobs", status="failed") == 2


async def test_unwritable_metrics_file_exits_2_before_anything(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.yaml", 1)
    async with Sandbox(FAST) as sb:
        done = await run_cli(
            "run", str(manifest), "--out", str(tmp_path / "o"),
            "--metrics-file", str(tmp_path / "no" / "such" / "dir.prom"), env=cli_env(sb),
        )  # fmt: skip
        assert sb.stats()["tasks_created"] == 0
    assert done.code == 2 and "--metrics-file" in done.err


async def pushgateway(status: int = 200) -> tuple[web.AppRunner, str, list[dict[str, Any]]]:
    received: list[dict[str, Any]] = []

    async def push(request: web.Request) -> web.Response:
        received.append(
            {
                "method": request.method,
                "path": request.path,
                "auth": request.headers.get("Authorization"),
                "body": (await request.read()).decode(),
            }
        )
        return web.Response(status=status)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", push)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"127.0.0.1:{port}", received


async def test_pushgateway_gets_the_metrics_at_the_end(tmp_path: Path) -> None:
    runner, where, received = await pushgateway()
    manifest = write_manifest(tmp_path / "m.yaml", 3)
    try:
        async with Sandbox(FAST) as sb:
            done = await run_cli(
                "run", str(manifest), "--out", str(tmp_path / "o"),
                "--pushgateway", f"http://ops:pa55word@{where}", env=cli_env(sb),
            )  # fmt: skip
    finally:
        await runner.cleanup()
    assert done.code == 0, done.err
    (push,) = received
    assert push["method"] == "PUT" and push["path"] == "/metrics/job/batch_runner/batch/m"
    assert push["auth"] == "Basic " + base64.b64encode(b"ops:pa55word").decode()
    pushed = parse(push["body"])
    assert one(pushed, "batch_runner_exit_code") == 0
    assert one(pushed, "batch_runner_jobs", status="succeeded") == 3
    assert "pa55word" not in done.out + done.err


async def test_a_failing_pushgateway_is_reported_and_changes_nothing(tmp_path: Path) -> None:
    runner, where, received = await pushgateway(status=500)
    manifest = write_manifest(tmp_path / "m.yaml", 2)
    try:
        async with Sandbox(FAST) as sb:
            done = await run_cli(
                "run", str(manifest), "--out", str(tmp_path / "o"), "--log-format", "json",
                "--pushgateway", f"http://{where}/s3cr3t", env=cli_env(sb),
            )  # fmt: skip
    finally:
        await runner.cleanup()
    assert done.code == 0
    assert len(received) == 1
    summary = json.loads(done.out)
    assert (
        summary["metrics"]["pushed"] is False and summary["metrics"]["pushgateway"] == "127.0.0.1"
    )
    warnings = [json.loads(line) for line in done.err.splitlines()]
    assert any(
        "Pushgateway at 127.0.0.1 failed (HTTP 500)" in w.get("message", "") for w in warnings
    )
    assert "s3cr3t" not in done.out + done.err


async def test_library_callers_get_the_same_metrics(tmp_path: Path) -> None:
    import batch_runner

    manifest = write_manifest(tmp_path / "m.yaml", 2)
    metrics = batch_runner.MetricsFile(tmp_path / "lib.prom", labels={"batch": "m"})
    result = await batch_runner.run(
        manifest, out_dir=tmp_path / "o", sandbox=FAST, reporter=metrics
    )
    metrics.finish(result)
    after = parse((tmp_path / "lib.prom").read_text("utf-8"))
    assert one(after, "batch_runner_jobs", status="succeeded") == 2
    assert one(after, "batch_runner_exit_code") == 0
    assert metrics.writes >= 2 and metrics.error is None


async def test_a_run_refused_by_the_lock_leaves_the_metrics_file_alone(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.yaml", 2)
    out, prom = tmp_path / "out", tmp_path / "m.prom"
    args = ("run", str(manifest), "--out", str(out), "--metrics-file", str(prom),
            "--metrics-interval", "0.2")  # fmt: skip
    async with Sandbox(SandboxConfig(queue_seconds=0.1, run_seconds=(20, 25))) as sb:
        holder = await start_cli(*args, env=cli_env(sb))
        try:
            await wait_until(lambda: prom.exists(), timeout=30)
            locked = await run_cli(*args, "--notify", "json://127.0.0.1:9/x", env=cli_env(sb))
            assert locked.code == 3
            now = parse(prom.read_text("utf-8"))  # still the holder's figures, never blanked
            assert one(now, "batch_runner_manifest_jobs") == 2
            assert one(now, "batch_runner_run_active") == 1
            assert "notification" not in locked.err  # the holder owns the notifications
        finally:
            holder.kill()
            await holder.wait()


async def test_a_run_ended_by_an_error_reports_its_exit_code(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.yaml", 2)
    prom = tmp_path / "m.prom"
    async with Sandbox(FAST) as sb:
        done = await run_cli(
            "run", str(manifest), "--out", str(tmp_path / "o"), "--metrics-file", str(prom),
            env=cli_env(sb, WIRO_API_SECRET="not-the-secret"),
        )  # fmt: skip
    assert done.code == 2, done.err
    assert "error:" in done.err
    assert one(parse(prom.read_text("utf-8")), "batch_runner_exit_code") == 2
