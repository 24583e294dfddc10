"""What every stage of one run shares: the ledger, the client, the options, the reporter and
the slot gate, plus the run's stop flag.

:meth:`RunContext.record` is the one way a stage changes a job's state: it makes the event
durable (or queues it, with ``durable=False``) and tells the reporter what it means, so the
ledger and the log cannot drift apart.
"""

from __future__ import annotations

from ..ledger.events import Event
from ..ledger.state import JobRecord, counts_by_status, total_cost
from ..ledger.store import Ledger
from ..manifest.job import Job
from ..manifest.loader import Manifest
from ..wiro.client import WiroClient
from .options import RunOptions
from .reporting import Reporter, RunEvent, report_for
from .slots import SlotGate


class RunContext:
    """One run's shared parts. Stages read ``stopping`` before starting anything new."""

    def __init__(
        self,
        manifest: Manifest,
        client: WiroClient,
        options: RunOptions,
        reporter: Reporter,
        ledger: Ledger,
    ) -> None:
        self.manifest = manifest
        self.client = client
        self.options = options
        self.reporter = reporter
        self.ledger = ledger
        self.out_dir = options.folder
        self.jobs: dict[str, Job] = {job.id: job for job in manifest.jobs}
        self.gate = SlotGate(options.slots)
        self.stop_reason: str | None = None
        self.stop_exit = 4

    def record_of(self, job_id: str) -> JobRecord:
        return self.ledger.state.jobs[job_id]

    async def record(
        self, event: Event, *, durable: bool = True, note: str | None = None, quiet: bool = False
    ) -> None:
        """Apply ``event``, journal it (fsync'd before returning when ``durable``) and report
        what it means (``note`` overrides the default text; ``quiet`` reports nothing)."""
        await self.ledger.record(event, durable=durable)
        if quiet:
            return
        job = getattr(event, "job", None)
        said = report_for(event, self.ledger.state.jobs.get(job) if job else None, note)
        if said is not None:
            self.reporter.event(said)

    def say(
        self,
        kind: str,
        job: str | None = None,
        message: str = "",
        level: str = "info",
        data: dict[str, object] | None = None,
    ) -> None:
        """Report something that is not a state change (a retry, a warning, an error)."""
        self.reporter.event(RunEvent(kind, job, message, level, dict(data or {})))

    @property
    def stopping(self) -> bool:
        return self.stop_reason is not None

    def stop(self, reason: str, exit_code: int = 4) -> None:
        """Stop submitting new tasks; what is in flight is still followed."""
        if self.stop_reason is None:
            self.stop_reason = reason
            self.stop_exit = exit_code
            self.say("stopping", message=f"stopping new submissions: {reason}", level="warning")

    def tick(self) -> None:
        """Send the reporter the current counts."""
        state = self.ledger.state
        self.reporter.update(
            counts_by_status(state), total=len(state.jobs), spent=total_cost(state)
        )
