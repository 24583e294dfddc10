"""Find tasks that a ``/Run`` may have created although its answer never arrived.

A crash between sending ``/Run`` and storing its answer, or a connection lost after sending,
leaves a job whose task may exist on the service. Before such a job is submitted again,
the project's recent tasks (``/Task/List``, newest first) are matched against it: same
model inputs, created no earlier than the recorded intent (minus clock skew), not already
owned by another job. Identical jobs each claim a different task, so two intentionally
identical rows stay two jobs. Matching is pure; only :func:`recent_tasks` does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ..wiro.client import WiroClient
from ..wiro.records import Task

#: How far the service's clock may lag ours when comparing creation times (seconds).
CLOCK_SKEW = 300.0
#: At most this many tasks are read back from ``/Task/List`` (pages of 100).
MAX_SCANNED = 5000


@dataclass(frozen=True, slots=True)
class Candidate:
    """A job whose ``/Run`` may have created a task."""

    job_id: str
    inputs: Mapping[str, str]
    intent_at: float


def task_matches(inputs: Mapping[str, str], task: Task) -> bool:
    """True when every input the job sent is echoed by the task's parameters."""
    params = task.parameters
    for key, value in inputs.items():
        if key == "callbackUrl" and not value:
            continue
        echoed = params.get(key)
        if echoed is None:
            if value == "":
                continue
            return False
        if echoed.strip() != value.strip():
            return False
    return True


def match(
    candidates: Sequence[Candidate],
    tasks: Iterable[Task],
    *,
    owned: set[str],
    skew: float = CLOCK_SKEW,
) -> dict[str, Task | None]:
    """Assign each candidate at most one unowned matching task, oldest fitting task first.

    Candidates are served in order of their intent time, so when several identical jobs
    were in doubt each gets its own task in submission order.
    """
    pool = sorted(
        (t for t in tasks if t.id not in owned),
        key=lambda t: (t.createtime or 0.0, int(t.id) if t.id.isdigit() else 0),
    )
    claimed: set[str] = set()
    result: dict[str, Task | None] = {}
    for cand in sorted(candidates, key=lambda c: c.intent_at):
        found: Task | None = None
        for task in pool:
            if task.id in claimed:
                continue
            if task.createtime is not None and task.createtime < cand.intent_at - skew:
                continue
            if task_matches(cand.inputs, task):
                found = task
                break
        if found is not None:
            claimed.add(found.id)
        result[cand.job_id] = found
    return result


async def recent_tasks(client: WiroClient, since: float, *, model: str | None = None) -> list[Task]:
    """The project's tasks created since ``since - CLOCK_SKEW``, newest first."""
    found: list[Task] = []
    start = 0
    while start < MAX_SCANNED:
        page = await client.list_tasks(start=start, limit=100, model=model)
        if not page.tasks:
            break
        found.extend(page.tasks)
        oldest = min((t.createtime for t in page.tasks if t.createtime), default=None)
        if oldest is not None and oldest < since - CLOCK_SKEW:
            break
        if len(page.tasks) < 100:
            break
        start += len(page.tasks)
    return found
