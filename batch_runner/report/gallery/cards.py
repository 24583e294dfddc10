"""One job as HTML: a card of the grid, a cell of the comparison, and its outputs shown as
what they are (``<video>``, a strip of ``<img>``, ``<audio>``, a text excerpt, a link).

Everything from a person or the service (ids, prompts, errors, names, paths, URLs) is
escaped here and nowhere else. Cards near the top of a page are *eager* (their media
elements are in the HTML); later ones are *lazy*: placeholders and plain links that the
page's script turns into media elements as they near the screen, so a page of hundreds of
cards opens at once and still works without JavaScript (the links).
"""

from __future__ import annotations

import functools
import mimetypes
import os
from html import escape
from pathlib import Path
from urllib.parse import quote

from ..._media import KINDS, kind_of
from ...ledger.events import SavedOutput
from ...ledger.published import is_current
from ...ledger.state import IN_FLIGHT, JobRecord, JobStatus
from ...manifest.job import Job
from ...manifest.loader import Manifest

#: Prompt characters shown on a card (the schema allows 2,048).
PROMPT_CHARS = 400
#: Characters of a text output shown on its card, read from the first bytes of the file.
TEXT_CHARS = 280
#: Images of one task shown as thumbnails; the rest are links.
STRIP_IMAGES = 8
#: Link modes: the local files, or the published copies where there are any.
LINK_MODES = ("local", "published")

#: The filter groups of the page, in button order; every unfinished status is "in progress".
GROUPS = (
    ("succeeded", "succeeded"),
    ("failed", "failed"),
    ("cancelled", "cancelled"),
    ("progress", "in progress"),
)
_DONE = {JobStatus.SUCCEEDED: "succeeded", JobStatus.FAILED: "failed",
         JobStatus.CANCELLED: "cancelled"}  # fmt: skip


def group_of(status: JobStatus) -> str:
    """The filter group of a status: itself when finished, else ``progress``."""
    return _DONE.get(status, "progress")


def output_kind(out: SavedOutput) -> str:
    """``video``, ``image``, ``audio``, ``text`` or ``other``: as recorded, else from the
    recorded content type, else from the file name (ledgers from before kinds were
    recorded hold only videos, named ``.mp4``)."""
    if out.kind in KINDS:
        return out.kind
    if out.content_type and out.content_type != "application/octet-stream":
        return kind_of(out.content_type)
    return _kind_of_extension(os.path.splitext(out.path)[1].lower())


@functools.lru_cache(maxsize=256)
def _kind_of_extension(ext: str) -> str:
    guessed = mimetypes.guess_type(f"x{ext}")[0]
    return kind_of(guessed) if guessed else "other"


def money(cost: float) -> str:
    return f"${cost:,.2f}" if cost >= 0.1 or cost == 0 else f"${cost:.4f}".rstrip("0")


class Cards:
    """Renders cards and comparison cells for pages at one depth below the folder.

    ``prefix`` is what a page's links to files in the folder start with ("" for
    ``index.html``, "../" for the pages in ``gallery/``). ``target`` (with ``links`` =
    ``published``) is the publish target whose current copies the links point at.
    """

    def __init__(
        self,
        out_dir: Path,
        manifest: Manifest | None,
        *,
        prefix: str = "",
        links: str = "local",
        target: str | None = None,
    ) -> None:
        self.out_dir = out_dir
        self.prefix = prefix
        self.target = target if links == "published" else None
        defs = manifest.definitions if manifest is not None else {}
        models = manifest.models if manifest is not None else ()
        self.titles = {m: (d.title or m) for m, d in defs.items()}
        self.show_model = len(models) > 1
        self._images: dict[Path, str] = {}
        #: outputs linked to their published copy and to the local file, in this page
        self.published = self.local = 0

    def title(self, model: str | None) -> str:
        return escape(self.titles.get(model, model) if model else "unknown model")

    # --- the grid ------------------------------------------------------------------------

    def card(self, record: JobRecord, job: Job | None, eager: bool) -> str:
        group = group_of(record.status)
        html = [
            f'<article class="card{"" if eager else " lz"}" data-g="{group}"><div class="h">'
            f'<b>{escape(record.job_id)}</b><i class="b">{record.status.value}</i></div>'
        ]
        if job is not None:
            html.append(self._inputs(job, eager))
        meta = []
        if self.show_model:
            meta.append(self.title(record.model or (job.model if job else None)))
        if job is not None:
            if quality := job.inputs.get("quality"):
                meta.append(escape(quality))
            if duration := job.inputs.get("duration"):
                meta.append(f"{escape(duration)} s")
        html.append(self._state(record, meta, eager=eager))
        html.append("</article>")
        return "".join(html)

    # --- the comparison ----------------------------------------------------------------

    def row(self, key: str, cells: list[tuple[str, JobRecord | None, Job | None]],
            eager: bool) -> str:  # fmt: skip
        """One prompt across models: a header (the group, its input image and prompt) and a
        cell per model (``cells`` in column order; a None record: not run on that model),
        each with the inputs in which its job differs from the others of the row."""
        lazy = "" if eager else " lz"
        html = [f'<section class="row{lazy}"><div class="h"><b>{escape(key)}</b></div>']
        jobs = [job for _, _, job in cells if job is not None]
        if jobs:
            html.append(self._inputs(jobs[0], eager))
        html.append('<div class="cells">')
        for model, record, job in cells:
            if record is None:
                html.append(
                    f'<div class="cell"><div class="h"><b>{self.title(model)}</b></div>'
                    '<p class="m">not run on this model</p></div>'
                )
                continue
            meta = _differences(job, jobs) if job is not None else []
            html.append(
                f'<div class="cell" data-g="{group_of(record.status)}"><div class="h">'
                f'<b>{self.title(model)}</b><i class="b">{record.status.value}</i></div>'
                f"{self._state(record, meta, eager=eager)}</div>"
            )
        html.append("</div></section>")
        return "".join(html)

    # --- parts -------------------------------------------------------------------------

    def _inputs(self, job: Job, eager: bool) -> str:
        prompt = job.inputs.get("prompt", "")
        if len(prompt) > PROMPT_CHARS:
            prompt = prompt[: PROMPT_CHARS - 1] + "…"
        image = self.input_image(job, eager)
        return f'<div class="r">{image}<p class="p">{escape(prompt)}</p></div>'

    def _state(self, record: JobRecord, meta: list[str], *, eager: bool) -> str:
        """Cost, the service's status while in flight, the error, the outputs."""
        if record.cost is not None:
            meta.append(money(record.cost))
        if record.status in IN_FLIGHT and record.service_status:
            meta.append(f"service: {escape(record.service_status)}")
        html = [f'<p class="m">{" · ".join(meta)}</p>'] if meta else []
        if record.error and record.status is not JobStatus.SUCCEEDED:
            html.append(f'<p class="e">{escape(record.error)}</p>')
        if record.status is JobStatus.SUCCEEDED:
            html.append(self.outputs(record, eager=eager))
        return "".join(html)

    def input_image(self, job: Job, eager: bool) -> str:
        """The job's input image (its local first frame, else an image URL), or nothing."""
        if job.image is not None:
            src = self._images.get(job.image)
            if src is None:
                if len(self._images) > 10_000:
                    self._images.clear()
                src = self._images[job.image] = self._local_input(job.image)
        else:
            url = job.inputs.get("inputImageUrl", "")
            if not url.startswith(("http://", "https://")):
                return ""
            src = escape(url)
        if not eager:
            return f'<i class="t" data-src="{src}"></i>'
        return f'<img class="t" src="{src}" alt="input image" loading="lazy">'

    def _local_input(self, image: Path) -> str:
        """Relative to the page when possible (the folder can move with its images)."""
        try:
            rel = os.path.relpath(image, self.out_dir)
        except ValueError:  # another drive on Windows
            return escape(image.as_uri())
        return escape(self.prefix + _quoted(rel))

    def outputs(self, record: JobRecord, *, eager: bool) -> str:
        """A succeeded job's outputs by kind; a task's images together in one strip, where
        the first of them is."""
        html: list[str] = []
        strip: list[str] = []
        at = -1
        for out in record.outputs:
            kind = output_kind(out)
            href = self.href(record, out)
            label = f"{escape(out.path)}</a>"
            if kind == "image" and len(strip) < STRIP_IMAGES:
                if at < 0:
                    at = len(html)
                    html.append("")
                strip.append(self._image(href, out.path, eager))
            elif kind in ("video", "audio") and eager:
                html.append(f'{_player(kind, href)}<a class="o" href="{href}">{label}')
            elif kind in ("video", "audio"):
                html.append(f'<a class="o lm" data-k="{kind}" href="{href}">{label}')
            else:
                if kind == "text" and (excerpt := self._excerpt(out)):
                    html.append(f'<pre class="tx">{escape(excerpt)}</pre>')
                html.append(f'<a class="o" href="{href}">{label}')
        if at >= 0:
            html[at] = f'<div class="strip">{"".join(strip)}</div>'
        return "".join(html)

    def _image(self, href: str, path: str, eager: bool) -> str:
        name = escape(path)
        if not eager:
            return f'<a class="im lm" data-k="image" href="{href}">{name}</a>'
        return f'<a class="im" href="{href}"><img src="{href}" alt="{name}" loading="lazy"></a>'

    def href(self, record: JobRecord, out: SavedOutput) -> str:
        """Where a link to ``out`` points (escaped): its published copy's public https
        address in ``published`` mode when it has a current one, else the local file."""
        if self.target is not None and is_current(record, out, self.target):
            for entry in record.published:
                url = entry.public_url
                if entry.name == out.name and url and url.startswith(("https://", "http://")):
                    self.published += 1
                    return escape(url)
        self.local += 1
        if os.path.isabs(out.path):
            return escape(Path(out.path).as_uri())
        return escape(self.prefix + _quoted(out.path))

    def _excerpt(self, out: SavedOutput) -> str:
        """The first characters of a text output, read from the file ("" when unreadable)."""
        rel = Path(out.path)
        if rel.is_absolute() or ".." in rel.parts:
            return ""
        try:
            with open(self.out_dir / rel, "rb") as f:
                head = f.read(TEXT_CHARS * 4)
        except OSError:
            return ""
        text = head.decode("utf-8", errors="replace")
        text = "".join(c for c in text if c >= " " or c in "\n\t").strip()
        return text if len(text) <= TEXT_CHARS else text[: TEXT_CHARS - 1] + "…"


def _differences(job: Job, row: list[Job], most: int = 6) -> list[str]:
    """``name value`` for the short inputs of ``job`` that not every job of ``row`` shares
    (a model's own settings), escaped; file inputs and URLs left out."""
    files = {f.send for f in job.files} | {f.name for f in job.files}
    shown = []
    for name, value in job.inputs.items():
        if name == "prompt" or name in files or not value or value.startswith(("http:", "https:")):
            continue
        if all(other.inputs.get(name) == value for other in row):
            continue
        text = value if len(value) <= 40 else value[:39] + "…"
        shown.append(f"{escape(name)} {escape(text)}")
        if len(shown) == most:
            break
    return shown


def _player(kind: str, href: str) -> str:
    if kind == "video":
        return f'<video controls muted loop playsinline preload="metadata" src="{href}"></video>'
    return f'<audio controls preload="metadata" src="{href}"></audio>'


def _quoted(path: str) -> str:
    """A relative path as a URL path."""
    return quote(path.replace(os.sep, "/"), safe="/")
