"""The files ``batch-runner init`` writes, and where: a starter manifest and, beside it, the
JSON Schema of manifests for its model that the manifest's first line points editors to.

Everything is written inside the folder the user named: ``PATH`` (``launch.yaml``) and
``launch.schema.json`` next to it. Written to stdout (``-``) there is no folder, so the
manifest points at the generic manifest schema shipped in the package instead.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .._resources import schemas_dir
from ..errors import UsageError
from ..models.definition import ModelDefinition
from .editorschema import editor_schema
from .starter import Header, StarterPlan, starter_plan, starter_text

#: What ``PATH`` ``-`` means: the manifest on stdout, nothing written.
STDOUT = "-"


def generic_schema_path() -> Path:
    """The manifest schema shipped in the package (structure only, for any model)."""
    return (schemas_dir() / "manifest.schema.json").resolve()


def target_path(path: str | None, model: str) -> Path | None:
    """Where the manifest goes: ``path``, ``<model name>.yaml`` inside ``path`` when it is a
    folder or in the current folder when it is not given; None for stdout (``-``)."""
    if path == STDOUT:
        return None
    default = f"{model.rpartition('/')[2]}.yaml"
    if path is None:
        return Path(default)
    given = Path(path)
    folder = given.is_dir() or path.endswith(("/", os.sep))
    return given / default if folder else given


def schema_path_for(manifest: Path) -> Path:
    """Where a manifest's editor schema goes: beside it, ``<name>.schema.json``."""
    stem = manifest.name
    for suffix in (".yaml", ".yml"):
        if stem.lower().endswith(suffix) and len(stem) > len(suffix):
            stem = stem[: -len(suffix)]
            break
    return manifest.with_name(f"{stem}.schema.json")


def starter_files(
    definition: ModelDefinition, manifest: Path | None, flags: Sequence[str] = ()
) -> tuple[dict[Path | None, str], StarterPlan]:
    """The files to write (path -> text; the manifest under None when it goes to stdout) and
    the plan behind the manifest. ``flags`` are repeated in the manifest's commands
    (``--sandbox``)."""
    plan = starter_plan(definition)
    if manifest is None:
        header = Header(
            schema_ref=str(generic_schema_path()),
            schema_note="The schema on the first line is batch-runner's generic manifest "
            "schema (structure only); written to a file instead of '-', the manifest gets a "
            "schema of this model's inputs beside it, for completion in editors.",
            flags=tuple(flags),
        )
        return {None: starter_text(plan, header)}, plan
    schema_path = schema_path_for(manifest)
    header = Header(
        schema_ref=schema_path.name,
        schema_note=f"{schema_path.name} beside it is a JSON Schema of manifests for this "
        "model, which editors with the YAML language server use to complete and check its "
        "inputs as you type; `batch-runner validate` is the full check.",
        manifest_name=manifest.name,
        flags=tuple(flags),
    )
    generic = json.loads(generic_schema_path().read_text("utf-8"))
    schema: dict[str, Any] = editor_schema(definition, generic)
    text = json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
    return {manifest: starter_text(plan, header), schema_path: text}, plan


def paths_for(manifest: Path) -> tuple[Path, Path]:
    """The manifest and its editor schema."""
    return manifest, schema_path_for(manifest)


def check_free(paths: Sequence[Path], *, force: bool = False) -> None:
    """UsageError unless each path can be written: not a folder, and (unless ``force``) not
    an existing file."""
    for path in paths:
        if path.is_dir():
            raise UsageError(f"{path} is a folder: give a file name for the manifest.")
    taken = [path for path in paths if path.exists() or path.is_symlink()]
    if taken and not force:
        names = " and ".join(str(p) for p in taken)
        one = len(taken) == 1
        raise UsageError(
            f"{names} already exist{'s' if one else ''}: give --force to replace "
            f"{'it' if one else 'them'}, or another path."
        )


def write_new(files: Mapping[Path, str], *, force: bool = False) -> list[Path]:
    """Write each file (creating its folder), refusing to replace any existing one unless
    ``force``; nothing is written when one is refused. Returns the paths written."""
    from .._files import atomic_write

    check_free(list(files), force=force)
    written: list[Path] = []
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        data = text.encode("utf-8")
        if force:
            atomic_write(path.parent, path.name, data, mode=0o644)
        else:
            with path.open("xb") as handle:  # never replaces a file made meanwhile
                handle.write(data)
        written.append(path)
    return written
