"""What a run must do, decided from the manifest and the ledger alone (pure, no I/O).

Every job falls in exactly one bucket:

* ``submit``: no task on the service (new, pending, or given a new round);
* ``reconcile``: a ``/Run`` may have created a task whose id was never recorded;
* ``track``: a task id is recorded and the task is not finished: follow it, never resubmit;
* ``download``: the task finished and its outputs are not all saved;
* ``verify``: succeeded; its files are checked against size and sha256 before skipping;
* ``skip``: failed or cancelled, and ``--retry-failed`` was not given.

``new`` (jobs the ledger has never seen) and ``events`` (edited jobs, new rounds) are what
makes the ledger agree with the manifest, recorded before any work starts: a new job is
registered from its :class:`Job` when the run records it, so planning 100,000 new jobs holds
no event for each.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ..ledger.events import JobRegistered, JobReset
from ..ledger.state import JobRecord, JobStatus, LedgerState
from ..manifest.job import Job


@dataclass
class Plan:
    """Job ids per bucket, in manifest order."""

    #: jobs to register: the ledger has no record of them
    new: list[Job] = field(default_factory=list)
    events: list[JobRegistered | JobReset] = field(default_factory=list)
    submit: list[str] = field(default_factory=list)
    reconcile: list[str] = field(default_factory=list)
    track: list[str] = field(default_factory=list)
    download: list[str] = field(default_factory=list)
    verify: list[str] = field(default_factory=list)
    skip: list[str] = field(default_factory=list)
    #: edited jobs whose earlier outputs are to be kept beside (moved) before the reset
    edited: list[str] = field(default_factory=list)
    #: edited jobs whose earlier task is still in flight: finish it first, then re-run
    edited_in_flight: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, int]:
        return {
            "submit": len(self.submit),
            "reconcile": len(self.reconcile),
            "track": len(self.track),
            "download": len(self.download),
            "verify": len(self.verify),
            "skip": len(self.skip),
            "edited": len(self.edited) + len(self.edited_in_flight),
        }


def started_message(total: int, summary: Mapping[str, int]) -> str:
    """The ``run_started`` line: what a run does with each of its ``total`` jobs, from a
    :meth:`Plan.summary`."""
    return (
        f"{total} jobs: {summary['submit']} to submit, {summary['track']} to track, "
        f"{summary['reconcile']} to reconcile, {summary['download']} to download, "
        f"{summary['verify']} done, {summary['skip']} failed earlier"
    )


def plan_run(jobs: Iterable[Job], state: LedgerState, *, retry_failed: bool = False) -> Plan:
    """Sort every manifest job into its bucket; jobs only in the ledger are left alone,
    except those with a task in flight, which are still tracked so no paid video is lost."""
    plan = Plan()
    seen: set[str] = set()
    for job in jobs:
        seen.add(job.id)
        record = state.jobs.get(job.id)
        if record is None:
            plan.new.append(job)
            plan.submit.append(job.id)
        elif record.fingerprint != job.fingerprint:
            _plan_edited(plan, job, record)
        else:
            _plan_known(plan, record, retry_failed)
    for job_id, record in state.jobs.items():
        if job_id not in seen and record.status in (JobStatus.QUEUED, JobStatus.RUNNING):
            plan.track.append(job_id)
        elif job_id not in seen and record.status == JobStatus.DOWNLOADING:
            plan.download.append(job_id)
    return plan


def _plan_known(plan: Plan, record: JobRecord, retry_failed: bool) -> None:
    """A job the ledger knows with the same inputs: continue where it stands."""
    status, job_id = record.status, record.job_id
    if status == JobStatus.PENDING:
        plan.submit.append(job_id)
    elif status in (JobStatus.SUBMITTING, JobStatus.UNKNOWN):
        plan.reconcile.append(job_id)
    elif status in (JobStatus.QUEUED, JobStatus.RUNNING):
        plan.track.append(job_id)
    elif status == JobStatus.DOWNLOADING:
        plan.download.append(job_id)
    elif status == JobStatus.SUCCEEDED:
        plan.verify.append(job_id)
    elif retry_failed:
        plan.events.append(JobReset(job=job_id, reason="--retry-failed"))
        plan.submit.append(job_id)
    else:
        plan.skip.append(job_id)


def _plan_edited(plan: Plan, job: Job, record: JobRecord) -> None:
    """A job whose inputs changed since it ran: never counted as done, never overwritten."""
    status = record.status
    if status in (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.DOWNLOADING):
        # Its earlier task is paid for: finish and keep it, the edit applies afterwards.
        plan.edited_in_flight.append(job.id)
        (plan.download if status == JobStatus.DOWNLOADING else plan.track).append(job.id)
    elif status in (JobStatus.SUBMITTING, JobStatus.UNKNOWN):
        # Settle the uncertain task first; the edit applies once it is settled.
        plan.edited_in_flight.append(job.id)
        plan.reconcile.append(job.id)
    else:
        if record.outputs:
            plan.edited.append(job.id)
        else:
            plan.events.append(
                JobRegistered(job=job.id, fingerprint=job.fingerprint, model=job.model)
            )
        plan.submit.append(job.id)
