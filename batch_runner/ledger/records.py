"""The ledger's job records by id, with finished work kept small.

A succeeded record is about twenty objects (its task id and token, the output's URL, path
and sha256, five numbers...): about 1 KB a job, 100 MB at 100,000 jobs, for records that
nothing reads again until the run ends. :class:`Records` keeps the most recent successes as
they are and *packs* older ones: their ``ledger.json`` bytes, deflated against a dictionary
made of a typical record (100-250 bytes each). Reading a packed record unpacks an equal
copy; writing the snapshot takes its bytes as they are (:meth:`Records.encoded_items`).
Packing is invisible to readers: a ``Records`` is a mapping of job ids to
:class:`~batch_runner.ledger.state.JobRecord` in registration order, like the dict it
replaces; :meth:`Records.version` tells a reader that polls for changes (the gallery)
whether a record changed without unpacking it. A record just registered and not touched
since (every job of a new 100,000-job run, at first) is held as its three values.
"""

from __future__ import annotations

import zlib
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from typing import Any

import orjson

from .events import RemoteOutput, SavedOutput
from .state import JobRecord, JobStatus

#: Succeeded records kept as objects (the newest): the engine, the publisher and the
#: reporters read a record just after it succeeds; only older ones are packed.
KEEP_UNPACKED = 1024

# Deflate parameters: raw stream (no header), a 4 KiB window (a record is smaller), a small
# memory level: a compressor set up per record costs a few microseconds, not 30.
_WBITS, _LEVEL, _MEMLEVEL = -12, 1, 4


def _template() -> bytes:
    """A typical succeeded record's JSON: the deflate dictionary (field names, statuses,
    the usual output's shape), so a packed record holds little more than its own values."""
    record = JobRecord(
        job_id="job-000000", status=JobStatus.SUCCEEDED, fingerprint="0" * 64, attempts=1,
        taskid="0000000", tasktoken="0" * 32, cost=0.0,
        remote_outputs=(RemoteOutput("output.mp4", "https://cdn1.wiro.ai/", 0, "video/mp4"),),
        outputs=(SavedOutput("output.mp4", ".mp4", 0, "0" * 64, "video/mp4", "video"),),
        created_at=1.0e9, submitted_at=1.0e9, finished_at=1.0e9, updated_at=1.0e9,
        model="PixVerse/image-to-video-v5",
    )  # fmt: skip
    return orjson.dumps(record)


_ZDICT = _template()


def pack(record: JobRecord) -> bytes:
    """``record`` as deflated ``ledger.json`` bytes."""
    packer = zlib.compressobj(_LEVEL, zlib.DEFLATED, _WBITS, _MEMLEVEL, 0, _ZDICT)
    return packer.compress(orjson.dumps(record)) + packer.flush()


def packed_json(blob: bytes) -> bytes:
    """The ``ledger.json`` bytes of a packed record."""
    unpacker = zlib.decompressobj(_WBITS, _ZDICT)
    return unpacker.decompress(blob) + unpacker.flush()


def unpack(blob: bytes) -> JobRecord:
    """A packed record, as an equal :class:`JobRecord`."""
    return JobRecord.from_dict(orjson.loads(packed_json(blob)))


#: A record as registered and not touched since: (fingerprint, registered at, model).
_Fresh = tuple[str, float | None, str | None]


def _fresh_row(record: JobRecord) -> _Fresh:
    return (record.fingerprint, record.created_at, record.model)


def _fresh(job_id: str, row: _Fresh) -> JobRecord:
    """The record of a job registered at ``row[1]`` and not touched since."""
    fingerprint, t, model = row
    return JobRecord(job_id, JobStatus.PENDING, fingerprint, created_at=t, updated_at=t,
                     model=model)  # fmt: skip


def _record(job_id: str, row: JobRecord | bytes | _Fresh) -> JobRecord:
    """The record a stored row stands for."""
    if type(row) is JobRecord:
        return row
    return unpack(row) if type(row) is bytes else _fresh(job_id, row)  # type: ignore[arg-type]


class Records(MutableMapping[str, JobRecord]):
    """Job records by id, in registration order; succeeded ones packed once
    :data:`KEEP_UNPACKED` newer successes have been stored (see the module docstring)."""

    __slots__ = ("_recent", "_rows")

    def __init__(
        self, records: Mapping[str, JobRecord] | Iterable[tuple[str, JobRecord]] = ()
    ) -> None:
        #: each job's record, its packed bytes, or a fresh record's row
        self._rows: dict[str, JobRecord | bytes | _Fresh] = dict(records)
        #: the newest successes stored, oldest first: packed when they leave
        self._recent: deque[tuple[str, JobRecord]] = deque()

    def __getitem__(self, job_id: str) -> JobRecord:
        return _record(job_id, self._rows[job_id])

    def get(self, job_id: str, default: Any = None) -> Any:
        row = self._rows.get(job_id)
        return default if row is None else _record(job_id, row)

    def __setitem__(self, job_id: str, record: JobRecord) -> None:
        status = record.status
        if status is JobStatus.PENDING and record == _fresh(job_id, _fresh_row(record)):
            self._rows[job_id] = _fresh_row(record)  # registered, nothing else yet
            return
        self._rows[job_id] = record
        if status is JobStatus.SUCCEEDED:
            recent = self._recent
            recent.append((job_id, record))
            if len(recent) > KEEP_UNPACKED:
                old_id, old = recent.popleft()
                if self._rows.get(old_id) is old:  # not changed since
                    self._rows[old_id] = pack(old)

    def __delitem__(self, job_id: str) -> None:
        del self._rows[job_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._rows

    def __repr__(self) -> str:
        return f"<Records: {len(self._rows)} jobs, {self.packed()} packed>"

    def status(self, job_id: str) -> JobStatus:
        """The job's status without unpacking (a packed record succeeded, a fresh one is
        pending)."""
        row = self._rows[job_id]
        if type(row) is JobRecord:
            return row.status
        return JobStatus.SUCCEEDED if type(row) is bytes else JobStatus.PENDING

    def version(self, job_id: str) -> object:
        """What is stored for the job: another object whenever its record changed (and
        once more when it is packed), for readers that look for changes."""
        return self._rows[job_id]

    def copy(self) -> Records:
        """A shallow copy (records are immutable, packed ones bytes): cheap at 100,000."""
        copied = Records()
        copied._rows = dict(self._rows)
        return copied

    def encoded_items(self) -> Iterator[tuple[str, JobRecord | orjson.Fragment]]:
        """Every job with what orjson writes for it: the record, or a packed record's own
        ``ledger.json`` bytes (the same bytes, never decoded into objects)."""
        for job_id, row in self._rows.items():
            if type(row) is bytes:
                yield job_id, orjson.Fragment(packed_json(row))
            else:
                yield job_id, _record(job_id, row)

    def packed(self) -> int:
        """How many records are packed (for tests and benchmarks)."""
        return sum(1 for row in self._rows.values() if type(row) is bytes)
