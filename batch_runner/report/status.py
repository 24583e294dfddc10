"""An output folder's figures, for ``batch-runner status`` and for library callers.

Only reads: it replays the snapshot and journal in memory, takes no lock and writes nothing,
so it works while a run is active and after a ``kill -9``. A sharded folder is merged, with
one row per shard.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..errors import UsageError, printable
from ..ledger.lock import holder_info, is_locked
from ..ledger.reading import has_ledger, read_summary
from ..ledger.shard import existing_shards


def _stamp(ts: float | None) -> str | None:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else None


def _tracking(holder: dict[str, Any]) -> dict[str, Any] | None:
    """How the active run tracks completion (``by``, ``reason``, ``message``), if it said."""
    tracking = holder.get("tracking")
    return tracking if isinstance(tracking, dict) and "by" in tracking else None


def folder_data(out_dir: Path) -> dict[str, Any]:
    """One ledger folder's figures, as plain JSON values (read from the ledger's bytes,
    without decoding every record: :mod:`batch_runner.ledger.summary`)."""
    summary = read_summary(out_dir)
    active = is_locked(out_dir)
    holder = (holder_info(out_dir) or {}) if active else {}
    runs = summary.runs
    return {
        "out_dir": str(out_dir),
        "active": active,
        "active_pid": holder.get("pid"),
        "tracking": _tracking(holder),
        "jobs": summary.jobs,
        "counts": summary.counts,
        "spent_usd": round(summary.cost, 6),
        "started_at": _stamp(runs[0].started_at) if runs else None,
        "last_run_started_at": _stamp(runs[-1].started_at) if runs else None,
        "last_run_ended_at": _stamp(runs[-1].ended_at) if runs else None,
        "last_exit_code": runs[-1].exit_code if runs else None,
        "runs": len(runs),
        "failures": summary.failures,
        "publish": summary.publish.to_dict() if summary.publish else None,
    }


def status_data(out_dir: str | Path) -> dict[str, Any]:
    """Everything ``status`` shows; a sharded folder is merged, with one row per shard.
    UsageError when the folder holds no ledger."""
    out_dir = Path(out_dir)
    shards = existing_shards(out_dir)
    if not shards:
        if not has_ledger(out_dir):
            raise UsageError(f"{out_dir} holds no ledger: is it a batch-runner output folder?")
        return folder_data(out_dir)
    count = max(s.count for s in shards)
    rows = []
    for shard in shards:
        folder = shard.folder(out_dir)
        row = folder_data(folder) if has_ledger(folder) else None
        rows.append({"shard": shard.folder_name, "index": shard.index, "reported": row is not None,
                     **(row or {"active": is_locked(folder)})})  # fmt: skip
    present = {s.index for s in shards if s.count == count}
    missing = [f"{i}-of-{count}" for i in range(count) if i not in present]
    reported = [r for r in rows if r["reported"]]
    merged_counts: dict[str, int] = {}
    for row in reported:
        for name, value in row["counts"].items():
            merged_counts[name] = merged_counts.get(name, 0) + value
    starts = [r["started_at"] for r in reported if r["started_at"]]
    ends = [r["last_run_ended_at"] for r in reported if r["last_run_ended_at"]]
    return {
        "out_dir": str(out_dir),
        "sharded": True,
        "shard_count": count,
        "shards": rows,
        "shards_not_reported": missing + [r["shard"] for r in rows if not r["reported"]],
        "shards_active": [r["shard"] for r in rows if r["active"]],
        "active": any(r["active"] for r in rows),
        "active_pid": None,
        "jobs": sum(r["jobs"] for r in reported),
        "counts": merged_counts,
        "spent_usd": round(sum(r["spent_usd"] for r in reported), 6),
        "started_at": min(starts) if starts else None,
        "last_run_started_at": None,
        "last_run_ended_at": max(ends) if ends else None,
        "last_exit_code": None,
        "runs": sum(r["runs"] for r in reported),
        "failures": [{**f, "shard": r["shard"]} for r in reported for f in r["failures"]],
        "publish": _merged_publish([r["publish"] for r in reported if r.get("publish")]),
    }


def _merged_publish(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Every shard's publishing figures summed (the target of the first that published)."""
    if not rows:
        return None
    keys = ("published_jobs", "unpublished_jobs", "objects", "bytes")
    return {"target": rows[0]["target"], **{k: sum(r[k] for r in rows) for k in keys}}


def print_status(data: dict[str, Any]) -> None:
    """The figures as rich tables on stdout, for people."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(highlight=False, soft_wrap=True)
    state = "a run is active now" + (f" (pid {data['active_pid']})" if data["active_pid"] else "")
    console.print(
        f"[bold]{data['out_dir']}[/bold]: {data['jobs']} jobs, "
        f"{state if data['active'] else 'no run active'}"
    )
    if data.get("tracking"):
        tracking = data["tracking"]
        since = _stamp(tracking.get("since")) or "-"
        console.print(Text(printable(f"tracking: {tracking.get('message', '')} (since {since})")))
    if data.get("sharded"):
        _print_shards(console, data)
    table = Table(show_header=True, header_style="bold")
    table.add_column("status")
    table.add_column("jobs", justify="right")
    for name, count in data["counts"].items():
        if count:
            table.add_row(name, str(count))
    console.print(table)
    console.print(
        f"spent ${data['spent_usd']:.2f}; runs: {data['runs']}; first started "
        f"{data['started_at'] or '-'}; last ended {data['last_run_ended_at'] or '-'} "
        f"(exit {data['last_exit_code'] if data['last_exit_code'] is not None else '-'})"
    )
    publish = data.get("publish")
    if publish:
        from rich.markup import escape

        where = escape(printable(publish["target"]))
        line = (
            f"published to {where}: {publish['published_jobs']} jobs "
            f"({publish['objects']} objects, {publish['bytes']:,} bytes)"
        )
        if publish["unpublished_jobs"]:
            line += (
                f"; [bold]{publish['unpublished_jobs']} succeeded jobs not published[/bold] "
                "(re-run to publish them)"
            )
        console.print(line)
    if data["failures"]:
        fail = Table(show_header=True, header_style="bold", title="failed or cancelled")
        fail.add_column("job")
        fail.add_column("status")
        fail.add_column("reason")
        for row in data["failures"][:50]:
            # Service text is shown as-is: no rich markup, no terminal control characters.
            fail.add_row(row["job"], row["status"], Text(printable(row["error"] or "")))
        console.print(fail)
        if len(data["failures"]) > 50:
            console.print(f"... and {len(data['failures']) - 50} more (--json lists all)")


def _print_shards(console: Any, data: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(show_header=True, header_style="bold", title=f"{data['shard_count']} shards")
    for name in ("shard", "jobs", "succeeded", "failed", "in progress", "active", "last exit"):
        table.add_column(name)
    for row in data["shards"]:
        if not row["reported"]:
            table.add_row(row["shard"], "-", "-", "-", "-", "yes" if row["active"] else "no", "-")
            continue
        counts = row["counts"]
        busy = row["jobs"] - counts.get("succeeded", 0) - counts.get("failed", 0)
        busy -= counts.get("cancelled", 0)
        exit_code = row["last_exit_code"]
        table.add_row(
            row["shard"], str(row["jobs"]), str(counts.get("succeeded", 0)),
            str(counts.get("failed", 0) + counts.get("cancelled", 0)), str(busy),
            "yes" if row["active"] else "no", "-" if exit_code is None else str(exit_code),
        )  # fmt: skip
    console.print(table)
    if data["shards_not_reported"]:
        console.print("not reported yet: " + ", ".join(data["shards_not_reported"]))
