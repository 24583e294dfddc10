"""Text from the service never drives the operator's terminal: no escape sequences, no
rich markup, no credentials, in line logs, the summary and the status table."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from clihelp import REPO

from batch_runner.engine.runner import RunResult
from batch_runner.errors import printable, register_secret
from batch_runner.report.progress import LineReporter, RunEvent
from batch_runner.report.summary import print_summary

HOSTILE = "boom \x1b[2J\x1b[31m[bold red]red[/bold red]\x07 SECRET-xyz-123"


def test_printable_shows_controls_and_hides_secrets() -> None:
    register_secret("SECRET-xyz-123")
    text = printable(HOSTILE + "\nnext")
    assert "\x1b" not in text and "\x07" not in text
    assert "\\x1b[2J" in text and "SECRET-xyz-123" not in text
    assert text.endswith("\nnext")


def test_line_log_and_summary_are_inert(tmp_path: Path) -> None:
    register_secret("SECRET-xyz-123")
    stream = io.StringIO()
    LineReporter(stream).event(RunEvent("failed", "job-1", HOSTILE, "error"))
    result = RunResult(
        exit_code=1, counts={"failed": 1}, total=1, spent=0.0, wall_seconds=1.0,
        stop_reason=None, failures=[("job-1", HOSTILE)], out_dir=tmp_path,
    )  # fmt: skip
    print_summary(result, out=stream)
    written = stream.getvalue()
    assert "\x1b" not in written and "\x07" not in written
    assert "SECRET-xyz-123" not in written
    assert "[bold red]" in written


def test_status_table_shows_markup_literally(tmp_path: Path) -> None:
    import asyncio

    from batch_runner.ledger.events import JobFailed, JobRegistered
    from batch_runner.ledger.store import Ledger

    async def make() -> None:
        ledger = Ledger.open(tmp_path)
        await ledger.record(JobRegistered(job="job-1", fingerprint="f" * 64))
        await ledger.record(JobFailed(job="job-1", error=HOSTILE.replace("SECRET-xyz-123", "")))
        await ledger.close()

    asyncio.run(make())
    done = subprocess.run(
        [sys.executable, "-m", "batch_runner", "status", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "\x1b" not in done.stdout
    assert "[bold red]red[/bold red]" in done.stdout
