"""Find tasks that a ``/Run`` may have created although its answer never arrived.

A crash between sending ``/Run`` and storing its answer, or a connection lost after sending,
leaves a job whose task may exist on the service. Before such a job is submitted again,
the project's recent tasks (``/Task/List``, newest first) are matched against it: same
model inputs, created no earlier than the recorded intent (minus clock skew), not already
owned by another job. Identical jobs each claim a different task, so two intentionally
identical rows stay two jobs. Matching is pure; :func:`recent_tasks` and the
:class:`Reconciler` stage around it do the I/O and record what was found.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ..errors import ApiError, AuthError
from ..ledger.events import Reconciled
from ..wiro.client import WiroClient
from ..wiro.records import Task
from .context import RunContext
from .plan import Plan
from .uploads import Uploader, wire_value

#: How far the service's clock may lag ours when comparing creation times (seconds).
CLOCK_SKEW = 300.0
#: At most this many tasks are read back from ``/Task/List`` (pages of 100).
MAX_SCANNED = 5000


@dataclass(frozen=True, slots=True)
class Candidate:
    """A job whose ``/Run`` may have created a task. ``aliases`` maps a field the job sent
    to another name the task may echo it under (a file input's ``XUrl`` as ``X``)."""

    job_id: str
    inputs: Mapping[str, str]
    intent_at: float
    aliases: Mapping[str, str] = field(default_factory=dict)


def url_list(text: str) -> list[str] | None:
    """The URLs of a file input's value (one, comma-separated, or a JSON list), else None."""
    text = text.strip()
    if text.startswith("["):
        try:
            items = json.loads(text)
        except ValueError:
            return None
        return [str(i).strip() for i in items] if isinstance(items, list) else None
    parts = [p.strip() for p in text.split(",")]
    return parts if parts and all(p.startswith(("http://", "https://")) for p in parts) else None


def same_value(echoed: str, sent: str) -> bool:
    """Equal as sent, or the same URLs written another way (the service may echo a list of
    files as JSON where they were sent comma-separated, or the other way round)."""
    if echoed.strip() == sent.strip():
        return True
    mine, theirs = url_list(sent), url_list(echoed)
    return mine is not None and mine == theirs


def task_matches(
    inputs: Mapping[str, str], task: Task, aliases: Mapping[str, str] | None = None
) -> bool:
    """True when every input the job sent is echoed by the task's parameters."""
    params = task.parameters
    for key, value in inputs.items():
        if key == "callbackUrl" and not value:
            continue
        echoed = params.get(key)
        if echoed is None and aliases and key in aliases:
            echoed = params.get(aliases[key])
        if echoed is None:
            if value == "":
                continue
            return False
        if not same_value(echoed, value):
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
            if task_matches(cand.inputs, task, cand.aliases):
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


class Reconciler:
    """Settles uncertain ``/Run`` calls: each job is found on the service (and tracked) or
    known to have created nothing (and submitted); never submitted blindly.

    :attr:`owned` holds every task id some job of the folder already claims, so a search
    never hands one job another's task; it is gathered from the ledger when a search first
    needs it (most runs never reconcile: 100,000 task ids held for nothing otherwise).
    ``unresolved`` holds the jobs ``/Task/List`` could not settle in this run: they are
    neither tracked nor submitted, and the run exits 4.
    """

    def __init__(self, ctx: RunContext, uploader: Uploader) -> None:
        self.ctx = ctx
        self.uploader = uploader
        self._owned: set[str] | None = None
        self.unresolved: set[str] = set()
        self.count = 0

    @property
    def owned(self) -> set[str]:
        """Every task id the ledger holds, current or earlier: each is owned by its job."""
        if self._owned is None:
            owned: set[str] = set()
            for record in self.ctx.ledger.state.jobs.values():
                if record.taskid:
                    owned.add(record.taskid)
                owned.update(record.history)
            self._owned = owned
        return self._owned

    def claim(self, taskid: str) -> None:
        """A task id just recorded for its job (the ledger has it, so only a set already
        gathered needs it)."""
        if self._owned is not None:
            self._owned.add(taskid)

    async def at_start(self, plan: Plan) -> None:
        """Settle every uncertain /Run of an earlier run before anything is submitted."""
        self.ctx.say(
            "resume",
            message=f"reconciling {len(plan.reconcile)} uncertain submissions through /Task/List",
        )
        found = await self.find(plan.reconcile)
        if found is None:
            return  # left unresolved: neither tracked nor submitted in this run
        for job_id in plan.reconcile:
            (plan.track if found.get(job_id) else plan.submit).append(job_id)

    async def after_ambiguous(self, job_id: str) -> bool | None:
        """After an ambiguous /Run: True if the service shows its task (now tracked), False
        if it certainly has none, None if that could not be checked."""
        await asyncio.sleep(self.ctx.options.reconcile_delay)
        found = await self.find([job_id])
        return None if found is None else found.get(job_id, False)

    async def find(self, job_ids: list[str]) -> dict[str, bool] | None:
        """Search /Task/List for the given uncertain jobs and record what was found.

        None when the list cannot be read: those jobs stay unresolved (never resubmitted
        blindly), the other jobs go on, and the run ends with exit 4.
        """
        ctx = self.ctx
        records = [ctx.record_of(j) for j in job_ids]
        since = min((r.submitted_at or r.updated_at or time.time()) for r in records)
        try:
            tasks = await ctx.options.policy.call(lambda: recent_tasks(ctx.client, since))
        except AuthError:
            raise
        except ApiError as exc:
            self.unresolved.update(job_ids)
            for job_id in job_ids:
                ctx.say(
                    "error", job_id,
                    f"cannot check whether an uncertain /Run created a task: /Task/List "
                    f"failed ({exc.message}); the job is left unresolved so it is not paid "
                    "twice; re-run later to settle it",
                    level="error",
                )  # fmt: skip
            return None
        candidates = [
            Candidate(
                r.job_id,
                self.sent_inputs(r.job_id),
                r.submitted_at or since,
                self.aliases(ctx.jobs[r.job_id].model),
            )
            for r in records
            if r.job_id in ctx.jobs
        ]
        out: dict[str, bool] = {}
        for job_id, task in match(candidates, tasks, owned=self.owned).items():
            self.count += 1
            if task is None:
                await ctx.record(Reconciled(job=job_id))
                out[job_id] = False
            else:
                token = task.tasktoken or None
                await ctx.record(Reconciled(job=job_id, taskid=task.id, tasktoken=token))
                self.claim(task.id)
                out[job_id] = True
        return out

    def sent_inputs(self, job_id: str) -> dict[str, str]:
        """The inputs the job's /Run carried, as far as they can be known: local files'
        URLs only once their uploads are recorded (a /Run never went out before them)."""
        job = self.ctx.jobs[job_id]
        inputs = dict(job.inputs)
        for file_input in job.files:
            urls = [
                r.url if r.path is None else self.uploader.known_url(r) for r in file_input.refs
            ]
            if all(urls):
                inputs[file_input.send] = wire_value(file_input, [str(u) for u in urls])
            else:
                inputs.pop(file_input.send, None)
        return inputs

    def aliases(self, model: str) -> dict[str, str]:
        """Fields a task of ``model`` may echo under another name: ``XUrl`` as ``X``."""
        definition = self.ctx.manifest.definition(model)
        if definition is None:
            return {}
        return {i.url_field: i.name for i in definition.file_items if i.url_field != i.name}
