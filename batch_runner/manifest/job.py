"""One resolved manifest job, and the rules for its id and fingerprint.

Ids name output files (``<id>.mp4``) and ledger records, so they must be safe as file names on
every platform, unique without regard to letter case (macOS and Windows fold case), and stable
from one run to the next. The fingerprint lets the ledger notice that a job was edited after
it ran.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from .._slots import slot_builder
from ..ledger.layout import RESERVED_IDS

#: The model of a manifest that names none (the model this project started from).
DEFAULT_MODEL = "PixVerse/image-to-video-v5"

#: A job id: 1-128 characters from [A-Za-z0-9._-], starting with a letter or digit, not
#: ending with '.', no '..'. Kept identical to ``$defs.job_id`` in manifest.schema.json
#: (a test checks it).
ID_PATTERN = r"^(?!.*\.\.)[A-Za-z0-9](?:[A-Za-z0-9._-]{0,126}[A-Za-z0-9_-])?$"
ID_MAX_LENGTH = 128
_ID_RE = re.compile(ID_PATTERN)
_SAFE_PART_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
_WINDOWS_DEVICES = frozenset(
    {"con", "prn", "aux", "nul"}
    | {f"com{i}" for i in range(1, 10)}
    | {f"lpt{i}" for i in range(1, 10)}
)
#: Characters of the content hash in a derived id: 48 bits, so 100,000 jobs that share a
#: prompt slug collide with odds of about 1 in 50,000 (and a collision is still resolved).
HASH_CHARS = 12


@dataclass(frozen=True, slots=True)
class FileRef:
    """One file of a file input: a local file to upload (``path``, with the ``sha256`` of
    its content when the manifest was read), or a URL as given."""

    path: Path | None = None
    sha256: str | None = None
    url: str | None = None

    @property
    def token(self) -> str:
        """What the file contributes to a fingerprint: its content hash, or its URL."""
        return f"sha256:{self.sha256}" if self.path is not None else str(self.url)


@dataclass(frozen=True, slots=True)
class FileInput:
    """A model input that holds local files, uploaded before the job is submitted.

    ``name`` is the model's input, ``send`` the field the URLs go in, ``kind`` how:
    ``file`` (one URL), ``files`` (comma-separated URLs), ``combine`` (a JSON list) or
    ``url`` (a plain URL input such as PixVerse's ``inputImageUrl``, filled from ``image``).
    ``refs`` keeps the order written; URLs among them are sent as given.
    """

    name: str
    send: str
    kind: str
    refs: tuple[FileRef, ...]

    @property
    def local(self) -> tuple[FileRef, ...]:
        return tuple(ref for ref in self.refs if ref.path is not None)


@dataclass(frozen=True, slots=True, init=False, eq=False, repr=False)
class Job:
    """One job of a manifest, resolved and ready to submit.

    ``inputs`` holds every model input that the job or the manifest's defaults set, as the
    API's strings under the names they are sent as; an input filled from local files holds
    ``""`` until they are uploaded (``files`` lists them; ``image`` is the job's local input
    image, if any, for reports). ``index`` is the 0-based position in the expanded job list;
    ``source`` is ``"file:line"`` where the job was written; ``model`` the model it runs on;
    ``estimate`` its estimated price in USD (None: unknown); ``group`` the id the job would
    have without a matrix over ``model`` (jobs of one group are the same inputs on different
    models, for side-by-side reports; the job's own id when there is no such matrix, "" for
    a Job built by hand). ``fingerprint``: see :func:`fingerprint`.
    """

    id: str
    index: int
    inputs: dict[str, str]
    image: Path | None
    #: the fingerprint, or None for a job of :func:`quick_job` until it is first asked for
    _fingerprint: str | None
    source: str
    model: str
    files: tuple[FileInput, ...]
    estimate: float | None
    group: str

    def __init__(  # the fields in order, as a dataclass would take them
        self,
        id: str,
        index: int,
        inputs: dict[str, str],
        image: Path | None,
        fingerprint: str,
        source: str,
        model: str = DEFAULT_MODEL,
        files: tuple[FileInput, ...] = (),
        estimate: float | None = None,
        group: str = "",
    ) -> None:
        _build_into(self, id, index, inputs, image, fingerprint, source, model, files,
                    estimate, group)  # fmt: skip

    @property
    def fingerprint(self) -> str:
        """sha256 hex of what the service will be asked to do (:func:`fingerprint`).

        A job of the loader's fast path (no files, no image) computes it on first use, from
        its model and inputs exactly as the loader would have: ``validate`` of 100,000 jobs
        never asks, and a run asks once per job while planning, before anything is sent."""
        found = self._fingerprint
        if found is None:
            found = fingerprint(self.model, self.inputs, None)
            _set_fingerprint(self, found)
        return found

    def _key(self) -> tuple[Any, ...]:
        return (self.id, self.index, self.inputs, self.image, self.fingerprint, self.source,
                self.model, self.files, self.estimate, self.group)  # fmt: skip

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:  # inputs and files are left out: they are not hashable
        return hash((self.id, self.index, self.image, self.fingerprint, self.source,
                     self.model, self.estimate, self.group))  # fmt: skip

    def __repr__(self) -> str:
        return (
            f"Job(id={self.id!r}, index={self.index!r}, inputs={self.inputs!r}, "
            f"image={self.image!r}, fingerprint={self.fingerprint!r}, "
            f"source={self.source!r}, model={self.model!r}, files={self.files!r}, "
            f"estimate={self.estimate!r}, group={self.group!r})"
        )


_build_job = slot_builder(Job)
_build_into = slot_builder(Job, into=True)
_set_fingerprint = Job.__dict__["_fingerprint"].__set__


def quick_job(
    id: str,
    index: int,
    inputs: dict[str, str],
    source: str,
    model: str,
    estimate: float | None,
) -> Job:
    """``Job(id, index, inputs, None, fingerprint(model, inputs, None), source, model, (),
    estimate, id)``, the same object in a third of the time (:mod:`batch_runner._slots`),
    its fingerprint computed when first asked for. For the loader's hot path, whose jobs
    have no files and no local image, and whose ``inputs`` nobody changes afterwards;
    everyone else calls ``Job(...)``."""
    return _build_job(id, index, inputs, None, None, source, model, (), estimate, id)


#: Ids that need none of the checks below but the reserved names: letters, digits, '_' and
#: '-' only, starting with a letter or digit, within the length (most ids; 100,000 of them
#: in a large manifest, so one match instead of six tests each).
_PLAIN_ID = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_-]{{0,{ID_MAX_LENGTH - 1}}}")
_PLAIN_RESERVED = frozenset(n for n in (*_WINDOWS_DEVICES, *RESERVED_IDS) if "." not in n)


def id_problem(job_id: str) -> str | None:
    """Why ``job_id`` cannot name a job's files, or None when it can."""
    if _PLAIN_ID.fullmatch(job_id) is not None and job_id.lower() not in _PLAIN_RESERVED:
        return None
    return checked_id_problem(job_id)


def checked_id_problem(job_id: str) -> str | None:
    """:func:`id_problem` test by test, each with its message."""
    if not job_id:
        return "must not be empty"
    if "/" in job_id or "\\" in job_id:
        return "must not contain a path separator ('/' or '\\')"
    if ".." in job_id:
        return "must not contain '..'"
    if len(job_id) > ID_MAX_LENGTH:
        return f"is {len(job_id)} characters long; at most {ID_MAX_LENGTH} are allowed"
    if not _ID_RE.fullmatch(job_id):
        return (
            "may use only letters, digits, '.', '_' and '-', must start with a letter or "
            "digit and must not end with '.'"
        )
    lowered = job_id.lower()
    if lowered.split(".", 1)[0] in _WINDOWS_DEVICES:
        return "is a reserved device name on Windows"
    if lowered in RESERVED_IDS:
        return "is a file name the output folder uses itself"
    return None


def canonical_json(value: Any) -> bytes:
    """Compact JSON with sorted keys and raw UTF-8: the same bytes on every machine."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def fingerprint(
    model: str,
    inputs: Mapping[str, str],
    image_sha256: str | None,
    files: Mapping[str, Sequence[str]] | None = None,
) -> str:
    """sha256 hex of what the service will be asked to do.

    Local files count by the sha256 of their content, not by their path, size or mtime: a
    checkout on another machine (new mtimes, another folder) gives the same fingerprint, and
    replacing a picture behind an unchanged name changes it. ``image_sha256`` is the local
    ``image`` of a model whose image input is a URL field (PixVerse's ``inputImageUrl``);
    ``files`` maps each other input filled from local files to its files' tokens
    (:attr:`FileRef.token`, in order). Without ``files`` the payload is the one every
    earlier version used, so existing ledgers keep their fingerprints.
    """
    plain = inputs if type(inputs) is dict else dict(inputs)
    payload: dict[str, Any] = {"model": model, "inputs": plain, "image_sha256": image_sha256}
    if files:
        payload["files"] = {name: list(tokens) for name, tokens in files.items()}
    return hashlib.sha256(canonical_json(payload)).hexdigest()


def content_hash(inputs: Mapping[str, str], image_sha256: str | None) -> str:
    """sha256 hex of a job's own inputs, the basis of a derived id."""
    payload = {"inputs": dict(inputs), "image_sha256": image_sha256}
    return hashlib.sha256(canonical_json(payload)).hexdigest()


def slugify(text: str, max_length: int = 32) -> str:
    """Lower-case ASCII words joined by '-', cut at a word boundary (``""`` if none)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    words = re.findall(r"[a-z0-9]+", ascii_text.lower())
    slug = ""
    for word in words:
        candidate = f"{slug}-{word}" if slug else word
        if len(candidate) > max_length:
            break
        slug = candidate
    if not slug and words:
        slug = words[0][:max_length]
    return slug


def derive_job_id(prompt: str | None, own_content_hash: str, occurrence: int = 1) -> str:
    """The id of a job that gives none: ``<prompt slug>-<hash>``, ``-2``, ``-3`` for repeats.

    Built from the job's own content (not its position), so inserting, deleting or
    reordering jobs never renames the others; identical jobs stay distinct through their
    occurrence number. Editing a job's own fields gives it a new id (it is a new job).
    """
    slug = slugify(prompt or "") or "job"
    base = f"{slug}-{own_content_hash[:HASH_CHARS]}"
    return base if occurrence <= 1 else f"{base}-{occurrence}"


def id_part(value: str) -> str:
    """A matrix value as it appears in an id: itself when safe and short, else slug+hash."""
    if _SAFE_PART_RE.fullmatch(value) and ".." not in value and not value.endswith("."):
        return value
    digest = hashlib.sha256(value.encode("utf-8")).hexdigest()[:8]
    slug = slugify(value, 24)
    return f"{slug}-{digest}" if slug else digest


def matrix_job_id(base_id: str, combination: Sequence[tuple[str, str]]) -> str:
    """``castle`` + [("seed", "1"), ("quality", "720p")] -> ``castle__seed-1__quality-720p``.

    Too long for a file name: the tail is replaced by a hash of the full id, which keeps it
    unique and stable.
    """
    job_id = base_id + "".join(f"__{name}-{id_part(value)}" for name, value in combination)
    if len(job_id) > ID_MAX_LENGTH or id_problem(job_id) is not None:
        digest = hashlib.sha256(job_id.encode("utf-8")).hexdigest()[:HASH_CHARS]
        job_id = f"{job_id[: ID_MAX_LENGTH - HASH_CHARS - 2].rstrip('._-')}__{digest}"
    return job_id


def normalise_value(value: Any) -> str:
    """A value the schema accepted, in the API's string form.

    ``5`` -> ``"5"``, ``False`` -> ``"false"``, ``None`` -> ``""``; whole floats (only
    reachable for inputs whose schema allows numbers) lose their ``.0``.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if value is None:
        return ""
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e16:
            return str(int(value))
        return repr(value)
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode("utf-8")
