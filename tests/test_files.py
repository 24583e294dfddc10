"""The durable file steps everything else is built from."""

from __future__ import annotations

import functools
import os
import threading
import time
from pathlib import Path

import pytest

from batch_runner import _files
from batch_runner._files import PendingRenames, atomic_write


def test_a_sync_returns_only_once_every_folder_noted_before_it_is_durable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Folders noted by many renames cost one fsync each; a second sync that starts while
    the first holds its folder waits for that fsync instead of returning early."""
    synced: list[tuple[Path, float]] = []
    real = _files.fsync_dir

    def slow(directory: Path) -> None:
        time.sleep(0.05)
        real(directory)
        synced.append((directory, time.monotonic()))

    monkeypatch.setattr(_files, "fsync_dir", slow)
    renames = PendingRenames()
    (tmp_path / "sub").mkdir()
    for _ in range(20):
        renames.note(tmp_path, tmp_path / "sub")
    assert renames.pending == {tmp_path, tmp_path / "sub"}
    first = threading.Thread(target=renames.sync)
    first.start()
    time.sleep(0.01)  # the first sync has taken both folders
    renames.sync()
    second_returned = time.monotonic()
    first.join()
    assert sorted(path.name for path, _ in synced) == ["sub", tmp_path.name]
    assert all(done <= second_returned for _, done in synced)
    assert not renames.pending


def test_a_failed_sync_keeps_what_it_could_not_make_durable(tmp_path: Path) -> None:
    renames = PendingRenames()
    gone = tmp_path / "gone"
    renames.note(gone)
    with pytest.raises(FileNotFoundError):
        renames.sync()
    assert renames.pending == {gone}  # a later sync tries again
    gone.mkdir()
    renames.sync()
    assert not renames.pending


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
