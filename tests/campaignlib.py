"""The fault-and-kill campaign: drive the real CLI against a faulty sandbox, ``SIGKILL`` it at
random moments, let it finish, then audit what happened from the sandbox's own records.

Shared by ``tests/test_campaign.py`` (the CI version) and ``scripts/campaign.py`` (the long
version with its own report). Everything random is drawn from ``seed``: the sandbox's faults
and the moments of the kills (what the faults hit still depends on timing, so counts vary
slightly from run to run; the invariants must hold whatever they are). Nothing here
asserts: :func:`audit` returns the violations found and the figures, and the callers decide
(the test asserts ``violations == []``).

What is checked afterwards, from ``Sandbox.task_records()`` and the output folder:

* every manifest job is terminal in the ledger; every job with a task the service charged
  succeeded, with exactly that task's output; a job that failed had ``--max-attempts``
  tasks, all of them failed (it could not have succeeded);
* no job has more than one charged task, nor more tasks than ``--max-attempts``; no job was
  resubmitted while an earlier task of it was alive (its tasks' [create, end] intervals are
  disjoint); no task is left running on the service; every task the service holds for a job
  is in the job's ledger record (``taskid`` or ``history``): no "may have been created" task
  was missed by a reconciliation;
* every recorded output is a file that matches the size and sha256 the service served and
  the ledger records; no ``.part`` file is recorded; every file in the output folder is the
  runner's own or a recorded output; nothing was written outside the output folder (the
  runs' cwd, the manifest's folder, ``HOME`` and ``TMPDIR`` are empty folders checked after);
* no run printed a traceback or exited with a code other than 0, 1 or 4;
* the ledger validates against ``schemas/ledger.schema.json``, is mode 0600, and its journal
  was folded in on exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import os
import random
import re
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
from clihelp import cli_env, write_manifest

from batch_runner._resources import schemas_dir
from batch_runner.sandbox import FaultConfig, Sandbox, SandboxConfig

#: Every sandbox fault, at a rate that makes each happen several times in 50 jobs.
DEFAULT_RATES: dict[str, float] = {
    "http_429": 0.03,
    "http_500": 0.03,
    "http_502": 0.03,
    "drop_before_create": 0.10,
    "drop_after_create": 0.10,
    "generation_failure": 0.10,
    "task_error": 0.10,
    "system_cancel": 0.10,
    "truncated_download": 0.15,
    "slow_download": 0.12,
    "unknown_status": 0.20,
    "ws_drop": 0.05,
}

#: Files the runner itself keeps at the top of the output folder.
RUNNER_FILES = frozenset(
    {"ledger.json", "journal.jsonl", ".lock", ".lock.json", ".seal.json", "index.html"}
)
#: The gallery's other pages.
GALLERY_PAGE = re.compile(r"gallery/(all|succeeded|failed|cancelled|progress|compare)-\d{4,}\.html")
TERMINAL = ("succeeded", "failed", "cancelled")


@dataclass
class CampaignConfig:
    """One campaign. ``root`` must be an empty folder the campaign may fill."""

    root: Path
    jobs: int = 50
    kills: int = 5
    seed: int = 1
    concurrency: int = 8
    max_attempts: int = 3
    #: each killed run lives this many seconds (uniform) before its SIGKILL
    kill_after: tuple[float, float] = (0.6, 2.5)
    rates: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_RATES))
    slow_download_seconds: float = 0.4
    queue_seconds: float = 0.05
    run_seconds: tuple[float, float] = (0.1, 0.5)
    #: runs allowed after the kills to reach exit 0 or 1 (exit 4 means "work left: re-run")
    final_runs: int = 6
    run_timeout: float = 300.0
    extra_args: tuple[str, ...] = ()
    #: called with a line of progress (the script prints them; the test stays quiet)
    say: Callable[[str], None] = lambda line: None


@dataclass
class RunRecord:
    """One CLI process of the campaign."""

    index: int
    killed: bool
    exit_code: int | None
    seconds: float
    events: list[dict[str, Any]]
    stdout: str
    stderr_text: str  # non-JSON stderr lines (tracebacks would land here)


@dataclass
class Campaign:
    """What happened, for :func:`audit` and the report."""

    config: CampaignConfig
    manifest: Path
    out_dir: Path
    cwd: Path
    prompts: dict[str, str]  # job id -> its (distinct) prompt
    runs: list[RunRecord]
    tasks: list[dict[str, Any]]
    stats: dict[str, Any]
    seconds: float


@dataclass
class Audit:
    """The violations found (must be empty) and the figures of the report."""

    violations: list[str]
    figures: dict[str, Any]
    reconciliations: list[str]


# --- driving the CLI -----------------------------------------------------------------------


def _split_stderr(raw: bytes) -> tuple[list[dict[str, Any]], str]:
    events: list[dict[str, Any]] = []
    other: list[str] = []
    for line in raw.decode("utf-8", errors="replace").splitlines():
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                obj = json.loads(line)
                if isinstance(obj, dict):
                    events.append(obj)
                    continue
        other.append(line)
    return events, "\n".join(other)


async def _one_run(
    args: list[str], env: dict[str, str], cwd: Path, kill_after: float | None, timeout: float
) -> tuple[bool, int | None, float, bytes, bytes]:
    """Run the CLI; SIGKILL its process group after ``kill_after`` seconds if still running."""
    import sys

    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "batch_runner", *args,
        env=env, cwd=str(cwd),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    talk = asyncio.ensure_future(proc.communicate())
    killed = False
    try:
        wait = timeout if kill_after is None else kill_after
        try:
            out, err = await asyncio.wait_for(asyncio.shield(talk), wait)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            killed = kill_after is not None
            out, err = await asyncio.wait_for(talk, 30)
            if not killed:
                err += f"\ncampaign: the run did not finish within {timeout:.0f} s\n".encode()
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
    return killed, proc.returncode, time.monotonic() - started, out, err


def sandbox_config(config: CampaignConfig) -> SandboxConfig:
    faults = FaultConfig(slow_download_seconds=config.slow_download_seconds, **config.rates)
    return SandboxConfig(
        queue_seconds=config.queue_seconds,
        run_seconds=config.run_seconds,
        seed=config.seed,
        faults=faults,
    )


async def run_campaign(config: CampaignConfig) -> Campaign:
    """Run the whole campaign and collect what the audit needs."""
    rng = random.Random(f"campaign/{config.seed}")
    inputs, cwd = config.root / "in", config.root / "cwd"
    inputs.mkdir(parents=True)
    cwd.mkdir()
    (config.root / "home").mkdir()
    (config.root / "tmp").mkdir()
    manifest = write_manifest(inputs / "campaign.yaml", config.jobs, prefix="job")
    prompts = {f"job-{i:04d}": f"scene number {i}: a calm lake" for i in range(config.jobs)}
    out_dir = cwd / "out"
    args = [
        "run", str(manifest), "--out", "out",
        "--concurrency", str(config.concurrency),
        "--max-attempts", str(config.max_attempts),
        "--poll-interval", "0.2", "--poll-max", "1",
        "--log-format", "json",
        *config.extra_args,
    ]  # fmt: skip
    runs: list[RunRecord] = []
    started = time.monotonic()
    async with Sandbox(sandbox_config(config)) as sb:
        # HOME and TMPDIR point at empty folders, checked afterwards like the cwd
        env = cli_env(sb, HOME=str(config.root / "home"), TMPDIR=str(config.root / "tmp"))
        plan: list[float | None] = [rng.uniform(*config.kill_after) for _ in range(config.kills)]
        plan += [None] * config.final_runs
        for delay in plan:
            if runs and not runs[-1].killed and runs[-1].exit_code in (0, 1):
                break  # finished: exit 0 (all succeeded) or 1 (some failed for good)
            killed, code, seconds, out, err = await _one_run(
                args, env, cwd, delay, config.run_timeout
            )
            events, text = _split_stderr(err)
            runs.append(RunRecord(len(runs) + 1, killed, code, seconds, events, out.decode(), text))
            what = "killed (SIGKILL)" if killed else f"exit {code}"
            config.say(f"run {len(runs):3d}: {what} after {seconds:5.1f} s, {len(events)} events")
        tasks = sb.task_records()
        stats = sb.stats(brief=True)
    return Campaign(
        config, manifest, out_dir, cwd, prompts, runs, tasks, stats, time.monotonic() - started
    )


# --- the audit -----------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _check_ledger_file(c: Campaign, bad: list[str]) -> dict[str, Any]:
    path = c.out_dir / "ledger.json"
    try:
        ledger: dict[str, Any] = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        bad.append(f"ledger.json unreadable: {exc}")
        return {"jobs": {}}
    schema = json.loads((schemas_dir() / "ledger.schema.json").read_text("utf-8"))
    for error in jsonschema.Draft202012Validator(schema).iter_errors(ledger):
        bad.append(f"ledger.json breaks the schema at {list(error.absolute_path)}: {error.message}")
    if path.stat().st_mode & 0o777 != 0o600:
        bad.append(f"ledger.json has mode {path.stat().st_mode & 0o777:o}, not 600")
    if (c.out_dir / "journal.jsonl").exists():
        bad.append("journal.jsonl is left after a clean exit (the ledger is not complete)")
    return ledger


def _check_tasks(c: Campaign, job_id: str, tasks: list[dict[str, Any]], bad: list[str]) -> None:
    """A job's tasks on the service: paid once, never more than allowed, never overlapping."""
    charged = [t for t in tasks if t["charged_usd"] > 0]
    if len(charged) > 1:
        bad.append(f"{job_id}: {len(charged)} charged tasks {[t['id'] for t in charged]}")
    if len(tasks) > c.config.max_attempts:
        bad.append(f"{job_id}: {len(tasks)} tasks for --max-attempts {c.config.max_attempts}")
    for task in tasks:
        if task["end_ts"] is None:
            bad.append(f"{job_id}: task {task['id']} is still {task['status']} on the service")
    for earlier, later in itertools.pairwise(tasks):
        end = earlier["end_ts"]
        if end is None or end > later["create_ts"]:
            bad.append(
                f"{job_id}: task {later['id']} was created while task {earlier['id']} was alive"
            )


def _check_outcome(
    c: Campaign, job_id: str, record: dict[str, Any], tasks: list[dict[str, Any]], bad: list[str]
) -> None:
    """The job's ledger record against its tasks: the paid task's video is the one kept, and
    a job that did not succeed could not have."""
    status = record["status"]
    if status not in TERMINAL:
        bad.append(f"{job_id}: not terminal ({status})")
    known = {record["taskid"], *record["history"]}
    orphans = [t["id"] for t in tasks if t["id"] not in known]
    if orphans:  # created for the job, yet never adopted: a reconciliation missed them
        bad.append(f"{job_id}: tasks {orphans} were never recorded in the ledger")
    charged = [t for t in tasks if t["charged_usd"] > 0]
    if charged:
        task = charged[0]
        if status != "succeeded":
            bad.append(f"{job_id}: task {task['id']} succeeded (charged) but the job is {status}")
            return
        if record["taskid"] != task["id"]:
            bad.append(f"{job_id}: the ledger holds task {record['taskid']}, not {task['id']}")
        served = {(o["size"], o["sha256"]) for o in task["outputs"]}
        saved = {(o["size"], o["sha256"]) for o in record["outputs"]}
        if served != saved:
            bad.append(f"{job_id}: saved outputs {saved} differ from served {served}")
    elif status == "succeeded":
        bad.append(f"{job_id}: succeeded without any charged task")
    elif len(tasks) < c.config.max_attempts:
        bad.append(
            f"{job_id}: {status} after {len(tasks)} of {c.config.max_attempts} attempts "
            f"({record['error']})"
        )
    elif not record["error"]:
        bad.append(f"{job_id}: {status} without a reason")


def _recorded(ledger: dict[str, Any], bad: list[str]) -> dict[str, dict[str, Any]]:
    """Every output path the ledger records (current and kept-beside), by path."""
    recorded: dict[str, dict[str, Any]] = {}
    for job_id, record in ledger["jobs"].items():
        for out in record["outputs"]:
            rel = out["path"]
            if rel.endswith(".part") or rel.startswith(".partial"):
                bad.append(f"{job_id}: a partial file is recorded as an output: {rel}")
            recorded[rel] = out
        for prev in record["previous"]:
            for out in prev["outputs"]:
                recorded[out["path"]] = out
    return recorded


def _check_files(c: Campaign, ledger: dict[str, Any], bad: list[str]) -> dict[str, int]:
    """Recorded outputs match; every file is accounted for; nothing outside the folder."""
    recorded = _recorded(ledger, bad)
    lost = 0
    for rel, out in recorded.items():
        path = c.out_dir / rel
        if not path.is_file() or path.is_symlink():
            bad.append(f"recorded output {rel} is missing")
            lost += 1
        elif path.stat().st_size != out["size"] or _sha256(path) != out["sha256"]:
            bad.append(f"recorded output {rel} does not match its size and sha256")
            lost += 1
    files = [p.relative_to(c.out_dir).as_posix() for p in c.out_dir.rglob("*") if not p.is_dir()]
    partials = sum(1 for rel in files if rel.startswith(".partial/"))
    for rel in sorted(files):
        if rel.startswith(".partial/") or rel in RUNNER_FILES or GALLERY_PAGE.fullmatch(rel):
            continue
        if rel not in recorded:
            bad.append(f"unrecorded file in the output folder: {rel}")
    outside = sorted(p.name for p in c.cwd.iterdir() if p.name != c.out_dir.name)
    if outside:
        bad.append(f"files written beside the output folder (cwd): {outside}")
    beside = sorted(p.name for p in c.manifest.parent.iterdir() if p != c.manifest)
    if beside:
        bad.append(f"files written beside the manifest: {beside}")
    for name in ("home", "tmp"):
        if found := sorted(p.name for p in (c.config.root / name).iterdir()):
            bad.append(f"files written to {name.upper()}: {found}")
    return {"lost_outputs": lost, "leftover_partials": partials, "files_checked": len(recorded)}


def audit(c: Campaign) -> Audit:
    """Check every invariant; return the violations and the figures."""
    bad: list[str] = []
    ledger = _check_ledger_file(c, bad)
    by_prompt = {prompt: job_id for job_id, prompt in c.prompts.items()}
    tasks_of: dict[str, list[dict[str, Any]]] = {job_id: [] for job_id in c.prompts}
    for task in c.tasks:
        job_id = by_prompt.get(task["parameters"].get("prompt", ""))
        if job_id is None:
            bad.append(f"task {task['id']} matches no manifest job")
        else:
            tasks_of[job_id].append(task)
    for job_id in c.prompts:
        tasks = sorted(tasks_of[job_id], key=lambda t: (t["create_ts"], int(t["id"])))
        _check_tasks(c, job_id, tasks, bad)
        record = ledger["jobs"].get(job_id)
        if record is None:
            bad.append(f"{job_id}: missing from the ledger")
        else:
            _check_outcome(c, job_id, record, tasks, bad)
    files = _check_files(c, ledger, bad)
    charged_jobs = sum(1 for ts in tasks_of.values() if any(t["charged_usd"] > 0 for t in ts))
    duplicates = sum(
        max(0, sum(1 for t in ts if t["charged_usd"] > 0) - 1) for ts in tasks_of.values()
    )
    lost = files["lost_outputs"] + sum(
        1
        for job_id, ts in tasks_of.items()
        if any(t["charged_usd"] > 0 for t in ts)
        and ledger["jobs"].get(job_id, {}).get("status") != "succeeded"
    )
    last = c.runs[-1] if c.runs else None
    for run in c.runs:
        if "Traceback" in run.stderr_text:
            bad.append(f"run {run.index} printed a traceback:\n{run.stderr_text[-2000:]}")
        if not run.killed and run.exit_code not in (0, 1, 4):
            bad.append(f"run {run.index} exited {run.exit_code}: {run.stderr_text[-500:]}")
    if last is None or last.killed or last.exit_code not in (0, 1):
        bad.append(f"the campaign did not finish (last exit {last and last.exit_code})")

    events = [e for run in c.runs for e in run.events]
    kinds = Counter(e.get("event") for e in events)
    retry_msgs = [str(e.get("message", "")) for e in events if e.get("event") == "retry"]
    reconciled = [e for e in events if e.get("event") == "reconciled"]
    found = sum(1 for e in reconciled if "found task" in str(e.get("message", "")))
    statuses = Counter(r["status"] for r in ledger["jobs"].values())
    responses = c.stats.get("responses", {})
    figures: dict[str, Any] = {
        "jobs": len(c.prompts),
        "succeeded": statuses.get("succeeded", 0),
        "failed": statuses.get("failed", 0),
        "cancelled": statuses.get("cancelled", 0),
        "runs": len(c.runs),
        "kills": sum(1 for r in c.runs if r.killed),
        "exit codes": " ".join("K" if r.killed else str(r.exit_code) for r in c.runs),
        "wall seconds": round(c.seconds, 1),
        "tasks created": len(c.tasks),
        "tasks charged": sum(1 for t in c.tasks if t["charged_usd"] > 0),
        "jobs with a charged task": charged_jobs,
        "faults injected": dict(sorted(c.stats.get("faults_injected", {}).items())),
        "requests": c.stats.get("requests_total", 0),
        "/Run answers": dict(sorted(responses.get("Run", {}).items())),
        "retries of /Run (certainly not created)": sum(m.startswith("/Run") for m in retry_msgs),
        "tasks resubmitted after a failure": sum("submitting again" in m for m in retry_msgs),
        "code 96 throttles": kinds.get("throttled", 0),
        "reconciliations": len(reconciled),
        "reconciled: task found": found,
        "reconciled: none created": len(reconciled) - found,
        "duplicates (charged twice)": duplicates,
        "lost outputs": lost,
        "outputs verified": files["files_checked"],
        "leftover partial files": files["leftover_partials"],
        "money charged (USD)": c.stats.get("money_charged_usd"),
    }
    cases = [
        f"run {i}: {e.get('job')}: {e.get('message')}"
        for i, run in enumerate(c.runs, 1)
        for e in run.events
        if e.get("event") == "reconciled"
    ]
    return Audit(bad, figures, cases)


def report(c: Campaign, a: Audit, *, command: str | None = None) -> str:
    """A plain-text report table."""
    lines = ["batch-runner fault-and-kill campaign", "=" * 60]
    if command:
        lines.append(f"command: {command}")
    cfg = c.config
    lines.append(
        f"seed {cfg.seed}, {cfg.jobs} jobs, concurrency {cfg.concurrency}, "
        f"--max-attempts {cfg.max_attempts}, kills planned {cfg.kills}"
    )
    lines.append(
        "fault rates: " + ", ".join(f"{k}={v:g}" for k, v in cfg.rates.items())
        + f", slow_download_seconds={cfg.slow_download_seconds:g}"
    )  # fmt: skip
    lines.append("-" * 60)
    width = max(len(k) for k in a.figures)
    for key, value in a.figures.items():
        if isinstance(value, dict):
            lines.append(f"{key:<{width}}  " + (", ".join(f"{k} {v}" for k, v in value.items())))
        else:
            lines.append(f"{key:<{width}}  {value}")
    lines.append("-" * 60)
    lines.append(f"'may have been created' cases reconciled: {len(a.reconciliations)}")
    lines.extend(f"  {case}" for case in a.reconciliations)
    lines.append("-" * 60)
    if a.violations:
        lines.append(f"VIOLATIONS: {len(a.violations)}")
        lines.extend(f"  {v}" for v in a.violations)
    else:
        lines.append("violations: none (every invariant holds)")
    return "\n".join(lines)
