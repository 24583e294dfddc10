"""The seal of a finished folder: how an unchanged re-run knows there is nothing to do.

Re-running a finished 100,000-job folder used to read and validate the whole manifest and
decode the whole ledger (seconds, hundreds of MB) to conclude "nothing to do". After a run
in which every job succeeded (and, with ``--publish``, was published), ``DIR/.seal.json``
records what that conclusion rested on:

* ``key``: a hash of the manifest's bytes and path, the batch-runner version, and what picks
  the work (the publishing target, the service the definitions came from);
* ``files``: every other file the manifest's jobs came from (data files, local inputs, model
  definitions), each with its size and modification time, and for each model the folders
  searched before its definition (a definition added in front of it changes the answer);
* ``ledger``: the identity of ``ledger.json`` and ``journal.jsonl`` and the seq they end at;
* ``outputs``: every saved output with its size and the time it was saved, so the quick
  verification of files (size, and not modified since) runs exactly as on the full path;
* the figures of the summary (counts, spend, publishing).

The next run checks all of it (a hash of one file and a ``stat`` per file) and, when every
part still holds, records its start and end in the journal and reports the sealed figures.
Anything that does not hold, or any doubt (a file unreadable, a seal of another version),
takes the full path, which verifies and resumes as always: the seal can only skip work
that the full path would have found to be nothing.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import stat
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from .. import __version__
from .._files import atomic_write, create_private, file_identity, fsync_dir, write_all
from ..errors import BatchRunnerError
from ..ledger.codec import encode_line, read_head
from ..ledger.events import RunEnded, RunStarted
from ..ledger.layout import JOURNAL_NAME, SEAL_NAME, SNAPSHOT_NAME
from ..ledger.lock import RunLock
from ..ledger.published import PublishFigures
from ..ledger.state import JobStatus, LedgerState
from ..manifest.loader import Manifest
from ..models.store import cache_root, find_file
from .plan import Plan, started_message
from .reporting import RunEvent
from .result import RunResult

VERSION = 1
#: Slack on "not modified after it was saved", as the full path's quick verification.
SLACK = 2.0


def seal_lookup(
    manifest_path: Path,
    *,
    service: str,
    publish: str | None,
    public_url: str | None,
    out: Path | None,
) -> tuple[str, Path] | None:
    """The key a sealed folder must hold for a run of ``manifest_path`` against ``service``
    publishing to ``publish``, and the folder to look in, from one read of the manifest
    (None when it is unreadable: the full path reports that).

    The key hashes the manifest's bytes with its path, the batch-runner version, the
    publishing target, the service, the definitions cache folder (another one may hold
    another definition) and whether ``--out`` chose the folder. The folder is ``out``, else
    where a run without it writes: the manifest's ``output_dir`` line, else
    ``outputs/<name>``. That is only a guess when the manifest sets ``output_dir`` in some
    other way (a merge key, a line inside a multi-line scalar), and safe anyway: the folder
    is only taken if its seal was made by a run of these very bytes without ``--out`` (the
    key says so), and such a run wrote into the folder the full reading chose, which it would
    choose again."""
    from ..manifest.context import Files
    from ..manifest.yamlfast import top_level_text
    from .options import default_output_dir

    try:
        data = Path(manifest_path).read_bytes()
    except OSError:
        return None
    digest = hashlib.sha256(data)
    parts = (os.path.abspath(manifest_path), __version__, publish or "", public_url or "",
             service, str(cache_root()), "--out" if out is not None else "output_dir")  # fmt: skip
    for part in parts:
        digest.update(b"\0" + part.encode("utf-8", "surrogatepass"))
    if out is not None:
        return digest.hexdigest(), out
    declared = top_level_text(data, "output_dir")
    if declared is None:
        return digest.hexdigest(), default_output_dir(manifest_path)
    return digest.hexdigest(), Files(Path(manifest_path).parent).resolve(declared)  # as the loader


def _identity(path: Path | str) -> list[int] | None:
    """:func:`file_identity` as the seal stores it (a JSON list); None also when the file
    cannot be looked at: the seal then does not hold, and the full path says why."""
    try:
        found = file_identity(path)
    except OSError:
        return None
    return list(found) if found is not None else None


@dataclass(frozen=True)
class Seal:
    """The parsed ``.seal.json``."""

    key: str
    seq: int
    ledger: list[int]
    journal: list[int] | None
    files: list[tuple[str, list[int]]]
    lookups: list[tuple[str, str, str | None]]
    #: (path, size, saved at) of every output; as written, the JSON text of that list
    outputs: list[tuple[str, int, float]] | orjson.Fragment
    total: int
    counts: dict[str, int]
    spent: float
    publish: dict[str, Any] | None
    #: when the last run that finished everything ended (the metrics' last success)
    ended_at: float | None = None

    def to_json(self) -> bytes:
        return orjson.dumps({"version": VERSION, **self.__dict__})


def read_seal(out_dir: Path) -> Seal | None:
    """The folder's seal, or None (none, unreadable, another version: take the full path)."""
    try:
        raw = orjson.loads((out_dir / SEAL_NAME).read_bytes())
        if raw.pop("version") != VERSION or not isinstance(raw.get("seq"), int):
            return None
        return Seal(**raw)
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def drop_seal(out_dir: Path) -> None:
    with contextlib.suppress(OSError):
        (out_dir / SEAL_NAME).unlink()


def broken(seal: Seal, out_dir: Path, key: str) -> str | None:
    """Why ``seal`` no longer says "nothing to do" for a run with ``key``; None when it
    holds. Blocking: a ``stat`` per file; the caller holds the folder's lock."""
    if seal.key != key:
        return "the manifest, its settings or batch-runner changed"
    if _identity(out_dir / SNAPSHOT_NAME) != seal.ledger:
        return "the ledger changed"
    if _identity(out_dir / JOURNAL_NAME) != seal.journal:
        return "the journal changed"
    for path, identity in seal.files:
        if _identity(path) != identity:
            return f"{path} changed"
    for folder, model, found in seal.lookups:
        hit = find_file(Path(folder), model)
        if (str(hit) if hit is not None else None) != found:
            return f"the definition of {model} changed"
    base, is_file, lstat = os.path.join(out_dir, ""), stat.S_ISREG, os.stat
    for rel, size, saved_at in seal.outputs:  # 100,000 of them: plain strings, no Path
        try:
            st = lstat(base + rel)
        except OSError:
            return f"{rel} is missing"
        if st.st_size != size or st.st_mtime > saved_at + SLACK or not is_file(st.st_mode):
            return f"{rel} changed"
    return None


def model_lookups(
    manifest: Manifest, places: Iterable[Path]
) -> list[tuple[str, str, str | None]] | None:
    """For each model, every folder searched up to the one its definition came from, with
    what was found there; None when a definition did not come from a file in those folders
    (fetched and not cached: the next run would fetch again, so nothing is sealed)."""
    folders = list(places)
    lookups: list[tuple[str, str, str | None]] = []
    for model in manifest.models:
        definition = manifest.definition(model)
        origin = os.path.abspath(definition.origin) if definition and definition.origin else None
        for folder in folders:
            hit = find_file(folder, model)
            lookups.append((str(folder), model, str(hit) if hit is not None else None))
            if hit is not None:
                if os.path.abspath(hit) != origin:
                    return None
                break
        else:
            return None
    return lookups


def input_files(manifest: Manifest) -> list[Path]:
    """Every file besides the manifest that its jobs were read or built from."""
    seen: dict[Path, None] = dict.fromkeys(manifest.data_files)
    for job in manifest.jobs:
        if job.image is not None:
            seen[job.image] = None
        for item in job.files:
            for ref in item.refs:
                if ref.path is not None:
                    seen[ref.path] = None
    return list(seen)


@dataclass(frozen=True)
class Basis:
    """What a run's jobs were built from, taken right after the manifest was loaded: the
    seal written after the run holds these, and only if none changed during the run."""

    key: str
    files: list[tuple[str, list[int]]]
    lookups: list[tuple[str, str, str | None]]


def basis_for(key: str, manifest: Manifest, places: Iterable[Path]) -> Basis | None:
    """The basis of a run of ``manifest`` (None when it cannot be sealed)."""
    lookups = model_lookups(manifest, places)
    if lookups is None:
        return None
    definitions = [Path(found) for _, _, found in lookups if found is not None]
    files: list[tuple[str, list[int]]] = []
    for path in [manifest.path, *input_files(manifest), *definitions]:
        identity = _identity(path)
        if identity is None:
            return None
        files.append((str(path), identity))
    return Basis(key, files, lookups)


def make_seal(
    out_dir: Path,
    basis: Basis,
    state: LedgerState,
    manifest: Manifest,
    *,
    counts: dict[str, int],
    spent: float,
    publish: dict[str, Any] | None,
) -> Seal | None:
    """The seal of a folder whose every job of ``manifest`` succeeded, as ``state`` (the
    ledger on disk, ``seq`` included) says; None when it cannot be sealed."""
    jobs = state.jobs
    pieces: list[bytes] = []  # the outputs as JSON, 1,024 a piece: not 100,000 tuples
    rows: list[tuple[str, int, float]] = []
    for job in manifest.jobs:
        record = jobs.get(job.id)
        if record is None or record.status is not JobStatus.SUCCEEDED:
            return None
        if record.fingerprint != job.fingerprint or record.finished_at is None:
            return None
        rows.extend((out.path, out.size, record.finished_at) for out in record.outputs)
        if len(rows) >= 1024:
            pieces.append(orjson.dumps(rows)[1:-1])
            rows.clear()
    if rows:
        pieces.append(orjson.dumps(rows)[1:-1])
    outputs = orjson.Fragment(b"[" + b",".join(pieces) + b"]")
    if any(_identity(path) != identity for path, identity in basis.files):
        return None  # an input changed during the run: the next run must look
    ledger = _identity(out_dir / SNAPSHOT_NAME)
    if ledger is None:
        return None
    return Seal(
        key=basis.key, seq=state.seq, ledger=ledger, journal=_identity(out_dir / JOURNAL_NAME),
        files=basis.files, lookups=basis.lookups, outputs=outputs, total=len(manifest.jobs),
        counts=counts, spent=spent, publish=publish,
        ended_at=state.runs[-1].ended_at if state.runs else None,
    )  # fmt: skip


def write_seal(out_dir: Path, seal: Seal) -> None:
    atomic_write(out_dir, SEAL_NAME, seal.to_json())


def record_rerun(out_dir: Path, seal: Seal, *, publish: str | None) -> Seal:
    """Journal this run's start and end (fsync'd), as the full path records them, and
    return the seal that holds after it."""
    pid = os.getpid()
    counts = dict(seal.counts)
    started = RunStarted(pid=pid, publish=publish)
    ended = RunEnded(pid=pid, exit_code=0, counts=counts)
    lines = encode_line(seal.seq + 1, started) + encode_line(seal.seq + 2, ended)
    journal = out_dir / JOURNAL_NAME
    fd = create_private(journal, append=True)
    try:
        write_all(fd, lines)
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_dir(out_dir)
    changes = {"seq": seal.seq + 2, "journal": _identity(journal), "ended_at": ended.t}
    after = Seal(**{**seal.__dict__, **changes})
    write_seal(out_dir, after)
    return after


def snapshot_seq(out_dir: Path) -> int | None:
    """The ``seq`` in ``ledger.json``'s head, read from its first bytes (None: unreadable)."""
    try:
        with open(out_dir / SNAPSHOT_NAME, "rb") as handle:
            head, _, _ = read_head(iter(functools.partial(handle.read, 1 << 16), b""))
    except OSError:
        return None
    seq = head.get("seq") if isinstance(head, dict) else None
    return seq if isinstance(seq, int) else None


def seal_folder(result: RunResult, basis: Basis | None) -> bool:
    """After a run: seal its folder when every job succeeded (and was published), under the
    folder's lock and only if the ledger on disk is the one the run left. Best effort: a
    folder that cannot be sealed simply takes the full path next time."""
    out_dir, state, manifest = result.out_dir, result.state, result.manifest
    if result.exit_code != 0 or result.interrupted or state is None or manifest is None:
        return False
    if basis is None or result.shard_base is not None:
        return False
    lock = RunLock(out_dir)
    try:
        lock.acquire()
    except BatchRunnerError:
        return False  # another run took the folder: it seals it, or not
    try:
        if snapshot_seq(out_dir) != state.seq or (out_dir / JOURNAL_NAME).exists():
            return False
        published = result.published.to_dict() if result.published is not None else None
        seal = make_seal(
            out_dir, basis, state, manifest,
            counts=dict(result.counts), spent=result.spent, publish=published,
        )  # fmt: skip
        if seal is None:
            drop_seal(out_dir)
            return False
        write_seal(out_dir, seal)
        return True
    except OSError:
        return False
    finally:
        lock.release()


def sealed_rerun(
    out_dir: Path, key: str, *, publish: str | None
) -> tuple[RunResult, float | None] | None:
    """The run, when the folder's seal still says there is nothing to do: the outputs pass
    the quick verification, the start and end are journalled, the sealed figures returned.
    None when the full path must run (no seal, anything changed, the folder is locked: the
    full path reports that)."""
    started = time.monotonic()
    seal = read_seal(out_dir)
    if seal is None:
        return None
    lock = RunLock(out_dir)
    try:
        lock.acquire()
    except BatchRunnerError:
        return None
    try:
        if broken(seal, out_dir, key) is not None:
            return None
        record_rerun(out_dir, seal, publish=publish.rstrip("/") if publish else None)
    except (OSError, TypeError, ValueError):  # a hand-edited seal: the full path decides
        return None
    finally:
        lock.release()
    return RunResult(
        exit_code=0,
        counts=dict(seal.counts),
        total=seal.total,
        spent=seal.spent,
        wall_seconds=time.monotonic() - started,
        stop_reason=None,
        failures=[],
        out_dir=out_dir,
        changed=False,
        published=PublishFigures(**seal.publish) if seal.publish else None,
    ), seal.ended_at


def started_event(result: RunResult, last_success: float | None) -> RunEvent:
    """The ``run_started`` event of a sealed re-run: the full path's, with every job done."""
    summary = {**dict.fromkeys(Plan().summary(), 0), "verify": result.total}
    message = started_message(result.total, summary)
    return RunEvent(
        "run_started",
        message=f"{message} (sealed: nothing changed since the last run)",
        data={**summary, "last_success_at": last_success, "sealed": True},
    )
