"""The file inputs of one job: which of its keys (and ``image``) set each file input of its
model, once the layers are merged, and the files each names: URLs as they are, local files
checked (real media, by content) and hashed, every refusal reported where it was written."""

from __future__ import annotations

from typing import Any

from .context import JobContext, Layer, SpecPlan
from .job import FileRef
from .sources import RawJob
from .spec import FileSpec, file_entries, is_url


class FileChecks:
    """The file checks of a manifest's jobs; ``axis_lines`` names the inputs the matrix
    sets (they are checked there). :attr:`reported` names the keys whose problem the last
    job's checks reported, so the schema's message about them is not said twice."""

    def __init__(self, ctx: JobContext, axis_lines: dict[str, int]) -> None:
        self.ctx = ctx
        self.axis_lines = axis_lines
        self.reported: set[str] = set()

    def resolve(
        self,
        raw: RawJob,
        plan: SpecPlan,
        merged: dict[str, Any],
        origin: dict[str, Layer],
        rank: dict[str, int],
    ) -> tuple[list[tuple[FileSpec, list[FileRef]]] | None, set[str]]:
        """Each file input the job sets (with ``image``), as files in order (None when a
        problem was reported), and the names of the file inputs it tried to set. Keys of
        lower layers that a higher one overrides are dropped from ``merged``."""
        found: list[tuple[FileSpec, list[FileRef]]] = []
        attempted: set[str] = set()
        if self.reported:
            self.reported.clear()
        if plan.trigger.isdisjoint(merged):
            return found, attempted
        ok = True
        for name, fs, candidates in plan.files:
            keys = [k for k in candidates if k in merged]
            if not keys:
                continue
            attempted.add(name)
            top = max(keys, key=lambda k: rank[k])
            same = [k for k in keys if rank[k] == rank[top]]
            for key in keys:
                if key not in same:
                    merged.pop(key, None)  # overridden by a later layer
            layer = origin[top]
            if len(same) > 1:
                ok = False
                if layer.where is not None:
                    keys_text = "' or '".join(sorted(same, key=lambda k: k != "image"))
                    self.ctx.issue(raw, layer.line_of(same[-1]),
                               f"{layer.where}: set either '{keys_text}', not both")  # fmt: skip
                continue
            if top in self.axis_lines and top != "image":
                continue  # the matrix sets it (conflicts were reported)
            if fs.kind == "url" and top != "image":
                continue  # a plain URL input set by its own name
            refs = self.refs_for(raw, fs, top, merged[top], layer)
            if refs is None:
                ok = False
                continue
            found.append((fs, refs))
        return (found if ok else None), attempted

    def refs_for(
        self, raw: RawJob, fs: FileSpec, key: str, value: Any, layer: Layer
    ) -> list[FileRef] | None:
        """The files ``value`` names, each checked; None when one is refused (reported)."""
        shown = f"{layer.prefix}{key}"
        where = layer.where
        if key == "image":
            if not isinstance(value, str) or not value:
                return None  # the job schema (or the loader) reported it
            if key in self.axis_lines or fs.name in self.axis_lines or fs.send in self.axis_lines:
                if where is not None:
                    text = f"{where}: 'image' conflicts with the matrix over '{fs.send}'"
                    self.ctx.issue(raw, layer.line_of(key), text)
                return None
            entries: list[str] = [value]
        else:
            entries, why = file_entries(fs, key, value)
            if why is not None:
                self.reported.add(key)
                if where is not None:
                    self.ctx.issues.add(
                        raw.file, layer.line_of(key), f"{where} field '{shown}': {why}"
                    )
                return None
        refs: list[FileRef] = []
        for entry in entries:
            if is_url(entry) and key != "image":
                refs.append(FileRef(url=entry))
                continue
            checked = self.ctx.files.check(fs, entry)
            if isinstance(checked, str):
                if where is not None:
                    self.ctx.issues.add(
                        raw.file, layer.line_of(key), f"{where} field '{shown}': {checked}"
                    )
                else:  # defaults or a models block: said once, where it was written
                    what = layer.prefix.rstrip(".") or "defaults"
                    text = f"{what} field '{key}': {checked}"
                    self.ctx.issues.once(layer.file, layer.line_of(key), text)
                return None
            refs.append(FileRef(path=checked[0], sha256=checked[1]))
        return refs
