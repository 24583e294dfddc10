"""Where model definitions live on disk, and reading and writing them.

Lookup order (first found wins):

1. ``models/<owner>/<name>.json`` beside the manifest: the project's pinned definitions;
2. the user cache, ``<cache>/models/<service>/<owner>/<name>.json``, where ``<cache>`` is
   ``$BATCH_RUNNER_CACHE_DIR`` or the platform's user cache folder (platformdirs) and
   ``<service>`` is derived from the API base, so a sandbox's definitions never stand in for
   the service's;
3. the definitions shipped in the package (``schemas/models/``; PixVerse v5 at least, so the
   demo works offline).

Files are written atomically, readable by all (they hold no secret: any registered
credential is scrubbed from the text before it is written).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import orjson

from .._files import atomic_write
from .._resources import schemas_dir
from ..errors import redact
from .definition import ModelDefinition, definition_from_file, model_problem
from .items import DefinitionProblem

#: The service's own API base; its cache folder is named after its host.
DEFAULT_API_BASE = "https://api.wiro.ai/v1"
#: Folder beside a manifest that pins its definitions.
PROJECT_DIR = "models"
SUFFIX = ".json"
#: Largest definition file read.
MAX_FILE_BYTES = 4 * 1024 * 1024


def cache_root(environ: Mapping[str, str] | None = None) -> Path:
    """``$BATCH_RUNNER_CACHE_DIR``, else the user cache folder (``~/.cache/batch-runner``)."""
    env = os.environ if environ is None else environ
    configured = env.get("BATCH_RUNNER_CACHE_DIR", "").strip()
    if configured:
        return Path(os.path.expanduser(configured))
    import platformdirs

    return Path(platformdirs.user_cache_dir("batch-runner", appauthor=False))


def public_base(api_base: str) -> str:
    """The API base without user info, query or fragment (what may be written down)."""
    parts = urlsplit(api_base.strip())
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


def service_key(api_base: str) -> str:
    """The cache folder name of a service: ``api.wiro.ai`` for Wiro, else host, port and a
    short hash of the base (two services on one host stay apart)."""
    base = public_base(api_base)
    if base == DEFAULT_API_BASE:
        return "api.wiro.ai"
    parts = urlsplit(base)
    host = re.sub(r"[^A-Za-z0-9.-]+", "-", parts.hostname or "service").strip(".-") or "service"
    port = f"-{parts.port}" if parts.port else ""
    digest = hashlib.sha256(base.encode("utf-8")).hexdigest()[:8]
    return f"{host}{port}-{digest}"


def relative_path(model: str) -> Path:
    """``owner/name`` -> ``owner/name.json`` (the name checked: it becomes a path)."""
    problem = model_problem(model)
    if problem is not None:
        raise DefinitionProblem(f"{model!r}: {problem}")
    owner, name = model.split("/")
    return Path(owner) / f"{name}{SUFFIX}"


def shipped_dir() -> Path:
    return schemas_dir() / "models"


def read_definition(path: Path, *, shipped: bool = False) -> ModelDefinition:
    """A definition file; raises DefinitionProblem (naming the file) when it is unusable.
    ``shipped``: one of the package's own files (its schema is checked by the tests)."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise DefinitionProblem(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise DefinitionProblem(f"{path} is larger than {MAX_FILE_BYTES:,} bytes")
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise DefinitionProblem(f"{path} is not valid JSON: {exc}") from None
    try:
        return definition_from_file(parsed, str(path), check_schema=not shipped)
    except DefinitionProblem as exc:
        raise DefinitionProblem(f"{path}: {exc}") from None


def write_definition(folder: Path, definition: ModelDefinition) -> Path:
    """Write ``folder/<owner>/<name>.json`` atomically (mode 0644); returns its path."""
    rel = relative_path(definition.model)
    target_dir = folder / rel.parent
    target_dir.mkdir(parents=True, exist_ok=True)
    text = orjson.dumps(definition.to_file(), option=orjson.OPT_INDENT_2).decode("utf-8")
    data = (redact(text) + "\n").encode("utf-8")
    return atomic_write(target_dir, rel.name, data, mode=0o644)


def find_file(folder: Path, model: str) -> Path | None:
    """The definition file of ``model`` in ``folder``, if there is one."""
    try:
        path = folder / relative_path(model)
    except DefinitionProblem:
        return None
    return path if path.is_file() else None


def known_models(folder: Path) -> Iterator[str]:
    """Every ``owner/name`` with a definition file in ``folder``."""
    if not folder.is_dir():
        return
    for path in sorted(folder.glob(f"*/*{SUFFIX}")):
        model = f"{path.parent.name}/{path.name[: -len(SUFFIX)]}"
        if model_problem(model) is None:
            yield model
