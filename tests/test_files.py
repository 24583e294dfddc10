"""The durable file steps everything else is built from."""

from __future__ import annotations

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
