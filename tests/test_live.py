"""The live display on a real terminal (a pty)."""

from __future__ import annotations

import asyncio
import os
import pty
import sys

from clihelp import REPO, MakeBatch

from batch_runner.sandbox import SandboxConfig


async def test_terminal_gets_a_live_bar(batch: MakeBatch) -> None:
    config = SandboxConfig(queue_seconds=0.05, run_seconds=(0.5, 1.0))
    b = await batch(jobs=4, config=config, env={"TERM": "xterm-256color", "COLUMNS": "120"})
    env = dict(b.env)
    env.pop("NO_COLOR", None)
    master, slave = pty.openpty()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "batch_runner", *b.args(),
        env=env, cwd=str(REPO), stdout=asyncio.subprocess.PIPE, stderr=slave,
    )  # fmt: skip
    os.close(slave)
    chunks: list[bytes] = []

    def read_all() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                return
            if not data:
                return
            chunks.append(data)

    reader = asyncio.get_running_loop().run_in_executor(None, read_all)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    await asyncio.wait_for(reader, 10)
    os.close(master)
    screen = b"".join(chunks).decode("utf-8", "replace")
    assert proc.returncode == 0
    assert "batch" in screen and "4/4" in screen
    assert "done 4" in screen
    assert "\x1b[" in screen  # drawn with terminal control sequences
    assert "4 succeeded" in out.decode()
