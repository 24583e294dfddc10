"""File inputs at ``/Run``: every form the service takes a file in, and a note of which came.

For an item ``X`` (Wiro's docs, "Model Parameters"):

- ``fileinput``: a file uploaded in multipart field ``X``, or a URL in ``XUrl``, or a URL in
  ``X`` itself (in that order of preference when several are sent);
- ``multifileinput``: files uploaded in ``X`` (repeated), and/or comma-separated URLs in
  ``XUrl`` (or in ``X``);
- ``combinefileinput``: files and URLs in ``X`` itself: repeated form fields, a JSON list in
  a JSON body, or a JSON-encoded list as a form field's text.

Each file that arrived is recorded as a *source* ``{"field", "form", "url"}`` (``form``:
``upload``, ``url``, ``url_list`` or ``json_list``; uploads also keep ``filename``), so a
test can assert that a client sent it under the right name and in the right form.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from .bodies import Body, FilePart
from .items import InputSpec
from .uploads import extension_of, refusal

#: Stores an uploaded file under a name; returns the public URL the task echoes.
StoreFile = Callable[[str, bytes], str]
Source = dict[str, str]


class FileInputError(Exception):
    """A file input was rejected; ``message`` is the service's code-0 text."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _check_url(url: str, field: str) -> str:
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise FileInputError(f"Request parameter [{field}] must be an http(s) URL.")
    return url


def _texts(body: Body, field: str) -> list[Any]:
    """Every value sent in ``field``: repeated form fields, or the one JSON value."""
    if field in body.values:
        return list(body.values[field])
    return [body.fields[field]] if body.fields.get(field) is not None else []


def _urls(value: Any, field: str, split_commas: bool) -> list[tuple[str, str]]:
    """(url, form) pairs from one sent value; empty values give none."""
    if isinstance(value, list):
        return [(str(v).strip(), "json_list") for v in value if str(v).strip()]
    text = str(value).strip()
    if not text:
        return []
    if text.startswith("["):
        try:
            items = json.loads(text)
        except ValueError:
            items = None
        if isinstance(items, list):
            return [(str(v).strip(), "json_list") for v in items if str(v).strip()]
    if split_commas and "," in text:
        return [(u.strip(), "url_list") for u in text.split(",") if u.strip()]
    return [(text, "url")]


def _upload(spec: InputSpec, part: FilePart, store: StoreFile) -> Source:
    message = refusal(part.filename, part.data)
    if message is not None:
        raise FileInputError(message)
    # The service renames a file sent to /Run after its input: inputImage-6060136.png
    number = int(hashlib.sha256(part.data).hexdigest()[:8], 16) % 10_000_000
    url = store(f"{spec.name}-{number}.{extension_of(part.filename)}", part.data)
    return {"field": spec.name, "form": "upload", "url": url, "filename": part.filename}


def _from_fields(body: Body, fields: tuple[str, ...], split_commas: bool) -> list[Source]:
    sources: list[Source] = []
    for field in fields:
        for value in _texts(body, field):
            for url, form in _urls(value, field, split_commas):
                sources.append({"field": field, "form": form, "url": _check_url(url, field)})
    return sources


def resolve_file(spec: InputSpec, body: Body, store: StoreFile) -> tuple[str, list[Source]]:
    """The parameter value the task echoes (URL, comma-separated URLs, or a JSON list of
    URLs) and the sources it came from; raises FileInputError."""
    name = spec.name
    uploads = [_upload(spec, part, store) for part in body.files.get(name, ())]
    if spec.kind == "fileinput":
        sources = uploads[:1]
        for field in (f"{name}Url", name):
            if not sources:
                sources = _from_fields(body, (field,), split_commas=False)[-1:]
    elif spec.kind == "multifileinput":
        sources = uploads + _from_fields(body, (f"{name}Url", name), split_commas=True)
    else:  # combinefileinput: no XUrl, everything in X itself
        sources = uploads + _from_fields(body, (name,), split_commas=False)
    if spec.required and not sources:
        raise FileInputError(f"Request files [{name}] required")
    if spec.max_files is not None and len(sources) > spec.max_files:
        raise FileInputError(f"Request parameter [{name}] must be at most {spec.max_files} files.")
    urls = [s["url"] for s in sources]
    if spec.kind == "fileinput":
        value = urls[0] if urls else ""
    elif spec.kind == "multifileinput":
        value = ",".join(urls)
    else:
        value = json.dumps(urls, separators=(",", ":")) if urls else ""
    return value, sources
