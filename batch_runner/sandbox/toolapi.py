"""``/Tool/Detail`` and ``/Tool/List``: the model catalogue as the service describes it.

Records are static, so each one is encoded to JSON once (full and summary) and answers are
assembled from those bytes. Detail finds a tool by its clean or raw slugs, case-insensitively;
an unknown one is code 1 ``slug-owner-project-not-exist`` (Wiro's error reference names that
text for a model that does not exist). List pages with ``start``/``limit`` (at most 100),
filters by ``search`` (a case-insensitive substring of the title, slugs or description),
``categories`` and ``tags`` (a tool must have all that are given), ``slugowner`` and
``hideworkflows``, sorts by ``id`` or ``title`` (``order`` ASC or DESC; otherwise the
catalogue's own order, "relevance"), and with ``summary`` gives the lighter record.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import Any

from . import jsonio
from .items import api_str
from .models import ModelSpec

#: Fields of a summary record (what Wiro's docs show ``Tool/List`` answer with ``summary``).
SUMMARY_FIELDS = (
    "id", "title", "slugowner", "slugproject", "cleanslugowner", "cleanslugproject",
    "description", "seodescription", "image", "computingtime", "categories", "tags",
    "marketplace", "onlymembers", "averagepoint", "commentcount", "dynamicprice", "cps",
    "approximatelycost", "taskstat",
)  # fmt: skip
MAX_LIST = 100
#: Fields ``search`` looks in.
SEARCHED_FIELDS = (
    "title", "slugowner", "slugproject", "cleanslugowner", "cleanslugproject", "description",
)  # fmt: skip

#: (code, message) of an error answer.
Refusal = tuple[int, str]


def truthy(value: Any) -> bool:
    return value is True or api_str(value).strip().lower() in ("true", "1", "yes")


def _names(value: Any) -> list[str]:
    """A filter list: a JSON list, a JSON-encoded list, or comma-separated text."""
    if value is None or value == "":
        return []
    if isinstance(value, str) and value.strip().startswith("["):
        with contextlib.suppress(ValueError):
            value = json.loads(value)
    items = value if isinstance(value, list) else str(value).split(",")
    return [str(v).strip().lower() for v in items if str(v).strip()]


def served_record(model: ModelSpec, dynamicprice_style: str, summary: bool) -> dict[str, Any]:
    """The record as served: ``dynamicprice`` as JSON text or as a list."""
    record = dict(model.record)
    if dynamicprice_style == "list" and isinstance(record.get("dynamicprice"), str):
        record["dynamicprice"] = json.loads(record["dynamicprice"])
    if summary:
        record = {k: record[k] for k in SUMMARY_FIELDS if k in record}
    return record


class Catalogue:
    """The served catalogue; answers are JSON bytes, or a Refusal."""

    def __init__(self, models: Mapping[str, ModelSpec], dynamicprice_style: str) -> None:
        self._models = list(models.values())
        self._encoded = {
            (m.slug, summary): jsonio.dumps(served_record(m, dynamicprice_style, summary))
            for m in self._models
            for summary in (False, True)
        }
        self._searchable = {
            m.slug: "\n".join(api_str(m.record.get(k)).lower() for k in SEARCHED_FIELDS)
            for m in self._models
        }

    def detail(self, fields: Mapping[str, Any]) -> bytes | Refusal:
        owner, project = api_str(fields.get("slugowner")), api_str(fields.get("slugproject"))
        for name, value in (("slugowner", owner), ("slugproject", project)):
            if not value.strip():
                return 0, f"Request parameter [{name}] required"
        model = next((m for m in self._models if m.names_tool(owner, project)), None)
        if model is None:
            return 1, "slug-owner-project-not-exist"
        record = self._encoded[(model.slug, truthy(fields.get("summary")))]
        return b'{"result":true,"errors":[],"tool":[' + record + b"]}"

    def listing(self, fields: Mapping[str, Any]) -> bytes | Refusal:
        numbers: dict[str, int] = {}
        for name, default in (("start", 0), ("limit", 20)):
            text = api_str(fields.get(name, default)).strip() or str(default)
            if not text.isdigit():
                return 0, f"Request parameter [{name}] must be a number."
            numbers[name] = int(text)
        matches = self._matching(fields)
        start, limit = numbers["start"], min(max(numbers["limit"], 1), MAX_LIST)
        summary = truthy(fields.get("summary"))
        page = b",".join(self._encoded[(m.slug, summary)] for m in matches[start : start + limit])
        head = b'{"result":true,"errors":[],"total":%d,"tool":[' % len(matches)
        return head + page + b"]}"

    def _matching(self, fields: Mapping[str, Any]) -> list[ModelSpec]:
        search = api_str(fields.get("search")).strip().lower()
        categories, tags = _names(fields.get("categories")), _names(fields.get("tags"))
        owner = api_str(fields.get("slugowner")).strip().lower()
        hide_workflows = truthy(fields.get("hideworkflows"))
        found = []
        for model in self._models:
            record = model.record
            own_categories = {c.lower() for c in model.categories}
            own_tags = {str(t).lower() for t in record.get("tags") or ()}
            owners = {api_str(record.get(k)).lower() for k in ("slugowner", "cleanslugowner")}
            if (
                (search and search not in self._searchable[model.slug])
                or not own_categories.issuperset(categories)
                or not own_tags.issuperset(tags)
                or (owner and owner not in owners)
                or (hide_workflows and "workflow" in own_categories)
            ):
                continue
            found.append(model)
        sort = api_str(fields.get("sort")).strip().lower()
        descending = api_str(fields.get("order", "DESC")).strip().upper() != "ASC"
        if sort == "id":
            found.sort(key=lambda m: int(m.modelid), reverse=descending)
        elif sort == "title":
            found.sort(key=lambda m: api_str(m.record.get("title")).lower(), reverse=descending)
        return found
