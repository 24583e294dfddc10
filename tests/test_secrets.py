"""The API key and secret never reach a file the run writes or anything it prints.

Runs the real CLI with distinctive credentials through a dry run, a run killed with SIGKILL
(leaving its journal), ``status`` (table and JSON) on the killed folder, a run that fails
jobs (JSON logs, ``-v``), a run with rejected credentials, and a service that echoes the
credentials back in its error texts; then greps every file under the test's folder and
everything printed. The ledger and the journal are mode 0600.
"""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path
from typing import Any

from aiohttp import web
from clihelp import MakeBatch, kill, load_ledger, run_cli, standin_env, write_manifest
from standin import StandIn, json_response

from batch_runner.sandbox import FaultConfig, SandboxConfig
from batch_runner.wiro.client import Credentials, WiroClient

KEY = "wk-live-7Q2f9Xc41Rb8Lm3Zt6Vd0Ns5"
SECRET = "ws-sec-Hk8Jp2Wq7Ev4Yt1Bn6Cx9Gz3"
WRONG_SECRET = "ws-sec-WRONG-a1b2c3d4e5f6g7h8"
NEEDLES = [KEY, SECRET, WRONG_SECRET, KEY[6:22], SECRET[7:23]]


def _leaks(data: bytes) -> list[str]:
    return [n for n in NEEDLES if n.encode() in data]


def assert_nothing_leaked(root: Path, printed: list[str]) -> int:
    """No needle in any file under ``root`` nor in anything printed. Returns files checked."""
    checked = 0
    for path in root.rglob("*"):
        if path.is_file():
            leaks = _leaks(path.read_bytes())
            assert not leaks, f"{path} holds {leaks}"
            checked += 1
    for text in printed:
        leaks = _leaks(text.encode())
        assert not leaks, f"printed {leaks}:\n{text[-2000:]}"
    return checked


def assert_private(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    assert mode == 0o600, f"{path.name} has mode {mode:o}"


async def test_credentials_never_written_nor_printed(batch: MakeBatch, tmp_path: Path) -> None:
    config = SandboxConfig(
        api_key=KEY,
        api_secret=SECRET,
        queue_seconds=0.2,
        run_seconds=(0.8, 1.5),
        seed=5,
        faults=FaultConfig(
            generation_failure=0.6, drop_after_create=0.2, http_500=0.05, truncated_download=0.2
        ),
    )
    b = await batch(jobs=8, config=config)
    poll = ("--poll-interval", "0.2")
    printed: list[str] = []

    dry = await b.run(*poll, "--dry-run")
    assert dry.code == 0, dry.err
    printed += [dry.out, dry.err]

    # A run killed mid-flight leaves its journal beside the snapshot: both private.
    # (-v after ``run`` here, before it below: both spellings are covered.)
    proc = await b.start("-v", *poll, "--log-format", "json")
    await b.wait_journal("submitted", 3, timeout=30)
    assert_private(b.out / "journal.jsonl")
    assert_private(b.out / "ledger.json")
    kill(proc)
    stdout, stderr = await proc.communicate()
    printed += [stdout.decode(), stderr.decode()]
    assert_nothing_leaked(tmp_path, printed)

    for extra in ((), ("--json",)):
        status = await b.cli("status", str(b.out), *extra)
        assert status.code == 0, status.err
        printed += [status.out, status.err]

    failing = await b.cli("-v", *b.args(*poll, "--log-format", "json"), timeout=120)
    assert failing.code == 1, failing.out + failing.err  # some generations failed
    printed += [failing.out, failing.err]
    again = await b.run(*poll, "--log-format", "text")
    printed += [again.out, again.err]
    for extra in ((), ("--json",)):
        status = await b.cli("status", str(b.out), *extra)
        printed += [status.out, status.err]
    dry = await b.run(*poll, "--dry-run")
    printed += [dry.out, dry.err]

    rejected = await b.cli(
        "-v", *b.args(out=tmp_path / "out2"), env={**b.env, "WIRO_API_SECRET": WRONG_SECRET}
    )
    assert rejected.code == 2, rejected.err
    printed += [rejected.out, rejected.err]

    ledger = b.ledger()
    assert any(r["status"] == "failed" for r in ledger["jobs"].values())
    assert_private(b.out / "ledger.json")
    assert assert_nothing_leaked(tmp_path, printed) >= 5


async def test_credentials_echoed_by_the_service_are_redacted(tmp_path: Path) -> None:
    """A service that quotes the credentials back (in a /Run refusal and in a task's
    debugerror): the ledger, the logs and the summary carry *** instead."""

    def echo(request: web.Request) -> str:
        return (
            f"bad request from key {request.headers.get('x-api-key')} with secret {SECRET} "
            f"(sig {request.headers.get('x-signature')})"
        )

    async def run_hook(request: web.Request, stand: StandIn) -> web.StreamResponse | None:
        if len(stand.tasks) == 1:
            return json_response(
                {"result": False, "errors": [{"code": 0, "message": echo(request)}]}, 400
            )
        return None

    async def detail_hook(request: web.Request, stand: StandIn) -> web.StreamResponse:
        task = stand.tasks[str((await request.json())["taskid"])]
        record: dict[str, Any] = stand.task_api(task)
        record.update(status="task_error", pexit="1", outputs=[], debugerror=echo(request))
        return json_response({"result": True, "errors": [], "tasklist": [record]})

    (tmp_path / "in").mkdir()
    manifest = write_manifest(tmp_path / "in" / "m.yaml", 2)
    out = tmp_path / "out"
    async with StandIn() as stand:
        stand.run_hook, stand.detail_hook = run_hook, detail_hook
        env = standin_env(stand.base_url, WIRO_API_KEY=KEY, WIRO_API_SECRET=SECRET)
        printed: list[str] = []
        for fmt in ("json", "text"):
            done = await run_cli(
                "-v", "run", str(manifest), "--out", str(out), "--no-socket",
                "--poll-interval", "0.1", "--log-format", fmt, "--retry-failed", env=env,
            )  # fmt: skip
            assert done.code == 1, done.out + done.err
            printed += [done.out, done.err]
        status = await run_cli("status", str(out), "--json", env=env)
        printed += [status.out, status.err]
    errors = [r["error"] for r in load_ledger(out)["jobs"].values()]
    assert len(errors) == 2, errors
    assert all(e and "***" in e for e in errors), errors
    assert_nothing_leaked(tmp_path, printed)


def test_reprs_never_show_credentials() -> None:
    creds = Credentials(KEY, SECRET)
    client = WiroClient(KEY, SECRET, base_url="http://127.0.0.1:9/v1")
    for text in (repr(creds), str(creds), repr(client), str(client), repr(client.credentials)):
        assert not _leaks(text.encode()), text
    asyncio.run(client.close())
