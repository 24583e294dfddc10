"""What ``batch-runner models`` prints: a model's inputs as a table, its prices, the
catalogue as a list, and what changed when a definition is pulled again.

Everything here comes from the service (titles, labels, option values) and is made printable
before it reaches a terminal.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from ..errors import printable
from ..models.definition import ModelDefinition
from ..models.items import InputItem
from ..models.prices import PriceTier

#: Characters of one table cell (long option lists are cut, with a count of the rest).
CELL = 60


def _num(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return ""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _cut(text: str, limit: int = CELL) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def allowed(item: InputItem) -> str:
    """The values an input takes, for people."""
    if item.kind == "choice":
        values = [repr(v) if v == "" else v for v in item.choices]
        shown: list[str] = []
        for value in values:
            if len(", ".join([*shown, value])) > CELL - 12:
                break
            shown.append(value)
        more = len(values) - len(shown)
        return ", ".join(shown) + (f" (+{more} more)" if more else "")
    if item.kind == "number":
        return "integer" if item.integer else "number"
    if item.kind == "file":
        return f"a file or URL (or a URL in {item.url_field})"
    if item.kind == "files":
        return f"files or URLs, a list (or URLs in {item.url_field})"
    if item.kind == "combine":
        return "files or URLs, a list"
    return "text" if item.known else f"text (type {item.type!r} is passed through)"


def limits(item: InputItem) -> str:
    parts = []
    if item.minimum is not None or item.maximum is not None:
        parts.append(f"{_num(item.minimum) or '…'} to {_num(item.maximum) or '…'}")
    if item.step is not None and item.kind == "number":
        parts.append(f"step {_num(item.step)}")
    if item.max_length is not None:
        parts.append(f"≤ {item.max_length:,} chars")
    if item.max_files is not None:
        parts.append(f"≤ {item.max_files} files")
    if item.is_file and item.accepts:
        parts.append(f"{item.accepts}s")
    return ", ".join(parts)


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """A plain text table (columns padded to their widest cell)."""
    cells = [[printable(_cut(str(c))) for c in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return lines


def tier_text(tier: PriceTier) -> str:
    when = ", ".join(f"{k}={v}" for k, v in tier.inputs) or "any inputs"
    unit = {
        "cpr": "per run",
        "cpo": "per output",
        "cps": "per second",
        "cp-promptlength": "per prompt character",
        "cp-outputVideoLength": "per second of video",
        "cp-pixel": "per pixel",
    }.get(tier.method, tier.method)
    return f"{when}: ${tier.price:g} {unit}"


def render_definition(definition: ModelDefinition) -> str:
    """``models show``: the model, its inputs as a table, its prices."""
    lines = [printable(f"{definition.model}: {definition.title}".rstrip(": "))]
    if definition.description:
        lines.append(printable(_cut(definition.description, 300)))
    if definition.categories:
        lines.append(printable("categories: " + ", ".join(definition.categories)))
    lines.append(printable(f"definition: {definition.origin}"))
    lines.append("")
    rows = [
        (
            item.name,
            item.type,
            "yes" if item.required else "",
            ""
            if item.default is None
            else repr(item.default)
            if item.default == ""
            else item.default,
            allowed(item),
            limits(item),
        )
        for item in definition.items
    ]
    if rows:
        headers = ("input", "type", "required", "default", "allowed values", "limits")
        lines += table(headers, rows)
    else:
        lines.append("inputs: none described (parameters is null)")
    image = definition.schema.get("x-image-input")
    if isinstance(image, str):
        lines.append(f"'image: FILE' in a manifest fills {image}.")
    lines.append("")
    lines.append("prices (estimates; the task's totalcost is what is charged):")
    for tier in definition.tiers[:40]:
        lines.append(printable(f"  {tier_text(tier)}"))
    if len(definition.tiers) > 40:
        lines.append(f"  ... and {len(definition.tiers) - 40} more tiers")
    if definition.typical_cost is not None:
        lines.append(f"  typical cost: ${definition.typical_cost:g} per run")
    if definition.cps is not None and not definition.tiers:
        lines.append(f"  otherwise: ${definition.cps:g} per second of run time")
    if not definition.tiers and definition.typical_cost is None:
        lines.append("  unknown")
    for warning in definition.warnings:
        lines.append(printable(f"warning: {warning}"))
    return "\n".join(lines)


def render_list(total: int, records: Sequence[dict[str, Any]], names: Sequence[str]) -> str:
    """``models list``: one row per model of the page."""
    rows = []
    for name, record in zip(names, records, strict=True):
        categories = record.get("categories")
        kinds = (
            [str(c) for c in categories if "-to-" in str(c)] if isinstance(categories, list) else []
        )
        typical = record.get("approximatelycost")
        price = f"${float(str(typical)):g}" if _is_number(typical) else ""
        rows.append((name, str(record.get("title") or ""), ", ".join(kinds[:3]), price))
    lines = table(("model", "title", "kind", "typical cost"), rows) if rows else ["no models"]
    if total > len(rows):
        lines.append(f"{len(rows)} of {total:,} models; narrow with a search or use --limit")
    return "\n".join(lines)


def _is_number(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def changes(old: ModelDefinition, new: ModelDefinition) -> list[str]:
    """What a pull changed in a definition, in a few lines (inputs, options, prices)."""
    found: list[str] = []
    before = {i.name: i for i in old.items}
    after = {i.name: i for i in new.items}
    added = [n for n in after if n not in before]
    removed = [n for n in before if n not in after]
    if added:
        found.append("new inputs: " + ", ".join(added))
    if removed:
        found.append("inputs gone: " + ", ".join(removed))
    for name in after.keys() & before.keys():
        if after[name] != before[name]:
            found.append(f"input {name} changed")
    if old.tiers != new.tiers or old.typical_cost != new.typical_cost:
        found.append("prices changed")
    if not found and old.digest() != new.digest():
        found.append("the record changed (no input or price did)")
    return [printable(line) for line in found]
