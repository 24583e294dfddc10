"""The durable file steps everything else is built from."""

from __future__ import annotations

import functools
import os
import threading
import time
from pathlib import Path

import pytest

from batch_runner import _files
from batch_runner._files import DirSync, atomic_write


def test_directory_fsyncs_are_shared_by_renames_that_wait_together(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twenty threads renaming into one folder need fewer fsyncs than renames, and none
    returns before an fsync that began after its rename."""
    began: list[float] = []
    real = _files.fsync_dir

    def slow(directory: Path) -> None:
        began.append(time.monotonic())
        time.sleep(0.02)
        real(directory)

    monkeypatch.setattr(_files, "fsync_dir", slow)
    sync = DirSync()
    covered: list[bool] = []

    def rename_then_sync(i: int) -> None:
        (tmp_path / f"f{i}.part").write_bytes(b"x")
        (tmp_path / f"f{i}.part").replace(tmp_path / f"f{i}")
        renamed = time.monotonic()
        sync.after_rename(tmp_path)
        covered.append(any(b >= renamed for b in began))

    threads = [threading.Thread(target=rename_then_sync, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(covered) and len(covered) == 20
    assert 1 <= len(began) < 20
    assert not sync._folders  # forgotten once nobody waits


def test_atomic_write_replaces_whole_and_private(tmp_path: Path) -> None:
    atomic_write(tmp_path, "a.json", b"one")
    atomic_write(tmp_path, "a.json", b"two")
    assert (tmp_path / "a.json").read_bytes() == b"two"
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_the_run_command_tunes_malloc_unless_the_user_did() -> None:
    """On Linux with glibc ``mallopt`` accepts the cap; a ``MALLOC_ARENA_MAX`` of the user's
    own is left as glibc read it."""
    import subprocess
    import sys

    code = "from batch_runner._memory import tune_malloc as f; print(f())"
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    run = functools.partial(subprocess.run, [sys.executable, "-c", code], capture_output=True,
                            text=True, check=True)  # fmt: skip
    expected = "True" if sys.platform.startswith("linux") and _glibc() else "False"
    assert run(env=env).stdout.strip() == expected
    assert run(env={**env, "MALLOC_ARENA_MAX": "4"}).stdout.strip() == "False"


def _glibc() -> bool:
    import platform

    return platform.libc_ver()[0] == "glibc"
