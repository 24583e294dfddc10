"""Stop every task in flight for an output folder, and record it (``batch-runner cancel``).

Queued tasks are cancelled (``/Task/Cancel``), running ones killed (``/Task/Kill``); each
stopped task is recorded ``cancelled`` in the ledger under the folder's lock, so a later run
neither tracks nor resubmits it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from ..errors import ApiError, UsageError
from ..ledger.events import JobCancelled
from ..ledger.lock import RunLock
from ..ledger.state import JobStatus, LedgerState
from ..ledger.store import Ledger, has_ledger
from ..wiro.client import WiroClient
from ..wiro.records import QUEUED_STATUSES


async def cancel(
    out_dir: str | os.PathLike[str],
    *,
    client: WiroClient | None = None,
    api_base: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[int, int]:
    """Cancel or kill every task in flight recorded in ``out_dir``: (stopped, not stopped).

    Uses ``client`` when given, else one from the ``WIRO_*`` environment (``api_base``
    overriding ``WIRO_API_BASE``). LockedError when a run holds the folder.
    """
    folder = Path(out_dir)
    if not has_ledger(folder):
        raise UsageError(f"{folder} holds no ledger: is it a batch-runner output folder?")
    env = dict(os.environ if environ is None else environ)
    if api_base:
        env["WIRO_API_BASE"] = api_base
    with RunLock(folder):
        ledger = Ledger.open(folder)
        try:
            if client is not None:
                return await cancel_all(client, ledger.state, ledger)
            async with WiroClient.from_env(env) as own:
                return await cancel_all(own, ledger.state, ledger)
        finally:
            await ledger.close()


async def cancel_all(client: WiroClient, state: LedgerState, ledger: Ledger) -> tuple[int, int]:
    """Stop each queued or running task of ``state``, recording each one stopped."""
    stopped = failed = 0
    for record in list(state.jobs.values()):
        if record.status not in (JobStatus.QUEUED, JobStatus.RUNNING) or not record.taskid:
            continue
        try:
            if record.service_status in QUEUED_STATUSES or record.status == JobStatus.QUEUED:
                try:
                    await client.cancel(record.taskid)
                except ApiError:
                    await client.kill(taskid=record.taskid)
            else:
                await client.kill(taskid=record.taskid)
        except ApiError as exc:
            failed += 1
            print(
                f"{record.job_id}: task {record.taskid} could not be stopped: {exc.message}",
                file=sys.stderr,
            )
            continue
        await ledger.record(
            JobCancelled(job=record.job_id, error="cancelled by the user (batch-runner cancel)")
        )
        stopped += 1
    return stopped, failed
