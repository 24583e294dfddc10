"""Hostile and broken replies at the run level: the real CLI against the sandbox (hostile output
names) or a stand-in service (``standin.py``) bending one reply at a time.

Every test checks the same containment: the job ends failed or is retried with a clear
reason (or succeeds when the reply is merely odd), nothing is written outside the output
folder, and no traceback is printed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from clihelp import cli_env, load_ledger, run_cli, standin_env, write_manifest
from standin import StandIn, endless, json_response, serve

from batch_runner.sandbox import Sandbox, SandboxConfig

FAST = SandboxConfig(queue_seconds=0.05, run_seconds=(0.1, 0.2))


@dataclass
class Outcome:
    code: int
    out: str
    err: str
    out_dir: Path
    ledger: dict[str, Any]

    @property
    def text(self) -> str:
        return self.out + self.err

    def job(self, job_id: str = "job-0000") -> dict[str, Any]:
        record: dict[str, Any] = self.ledger["jobs"][job_id]
        return record


def assert_contained(root: Path, outcome: Outcome, *, allowed: tuple[Path, ...] = ()) -> None:
    """No traceback; no file outside the output folder (``allowed``: the test's own inputs);
    no symlink inside it."""
    assert "Traceback" not in outcome.err, outcome.err[-3000:]
    for path in root.rglob("*"):
        if path.is_dir():
            continue
        inside = path.is_relative_to(outcome.out_dir) or any(
            path.is_relative_to(a) for a in allowed
        )
        assert inside, f"written outside the output folder: {path}"
    assert not Path("/abs").exists() and not Path("/tmp/evil.mp4").exists()
    for path in outcome.out_dir.rglob("*"):
        assert not path.is_symlink(), path


async def run_one(
    tmp_path: Path, env: dict[str, str], *args: str, jobs: int = 1, timeout: float = 120
) -> Outcome:
    """One run of a ``jobs``-job manifest with cwd = an empty folder deep inside ``tmp_path``
    (so that ``../..`` from the output folder still lands inside ``tmp_path``)."""
    (tmp_path / "in").mkdir(exist_ok=True)
    manifest = write_manifest(tmp_path / "in" / "m.yaml", jobs)
    cwd = tmp_path / "a" / "b" / "cwd"
    cwd.mkdir(parents=True, exist_ok=True)
    done = await run_cli(
        "run", str(manifest), "--out", "out", "--poll-interval", "0.1", "--poll-max", "0.5",
        "--retry-max-wait", "3", "--reconcile-delay", "0.2", *args,
        env=env, cwd=cwd, timeout=timeout,
    )  # fmt: skip
    out_dir = cwd / "out"
    ledger = load_ledger(out_dir) if (out_dir / "ledger.json").exists() else {"jobs": {}}
    return Outcome(done.code, done.out, done.err, out_dir, ledger)


# --- hostile output names (the sandbox's ``output_name``) -----------------------------------

HOSTILE_NAMES = [
    "../../etc/passwd",
    "../../../../../../../../tmp/evil.mp4",
    "/abs/x.mp4",
    "a\x00b.mp4",
    "x" * 496 + ".mp4",
    "..",
    "ledger.json",
    "C:\\Windows\\evil.mp4",
    "con.mp4",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=lambda n: repr(n[:24]))
async def test_sandbox_hostile_output_name_lands_inside(tmp_path: Path, name: str) -> None:
    async with Sandbox(FAST.but(output_name=name)) as sb:
        outcome = await run_one(tmp_path, cli_env(sb), "--no-socket")
        served = {o["sha256"] for t in sb.task_records() for o in t["outputs"]}
    assert outcome.code == 0, outcome.text
    record = outcome.job()
    assert record["status"] == "succeeded"
    [saved] = record["outputs"]
    assert saved["name"] == name
    path = outcome.out_dir / saved["path"]
    assert path.parent == outcome.out_dir and path.name.startswith("job-0000")
    assert saved["sha256"] in served
    assert_contained(tmp_path, outcome, allowed=(tmp_path / "in",))


# --- several outputs with hostile names (stand-in) -----------------------------------------


async def test_several_outputs_with_hostile_names_stay_in_the_job_folder(tmp_path: Path) -> None:
    names = [
        "../../evil.mp4", "/abs/evil.mp4", "ledger.json", "a\x00b.mp4", "y" * 500,
        "..", "", "sub/dir/../../../up.mp4", "EVIL.mp4", "evil.mp4",
    ]  # fmt: skip

    def outputs(s: StandIn, task: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            {"name": n, "size": str(len(s.body)), "url": f"{s.origin}/cdn/{task['id']}/{i}"}
            for i, n in enumerate(names)
        ]

    async with StandIn() as stand:
        stand.outputs = outputs
        outcome = await run_one(tmp_path, standin_env(stand.base_url), "--no-socket")
    assert outcome.code == 0, outcome.text
    saved = outcome.job()["outputs"]
    assert len(saved) == len(names)
    paths = [outcome.out_dir / o["path"] for o in saved]
    assert all(p.parent == outcome.out_dir / "job-0000" for p in paths), paths
    assert len({str(p).lower() for p in paths}) == len(names)  # none overwrote another
    assert all(p.read_bytes() == stand.body for p in paths)
    assert_contained(tmp_path, outcome, allowed=(tmp_path / "in",))


# --- refused URLs and redirects ------------------------------------------------------------


def _redirect(to: Callable[[StandIn, web.Request], str]) -> Callable[..., Awaitable[Any]]:
    async def hook(request: web.Request, stand: StandIn) -> web.StreamResponse:
        return web.Response(status=302, headers={"Location": to(stand, request)})

    return hook


REFUSED = {
    "ftp-scheme": ("ftp://127.0.0.1/x.mp4", None, "scheme 'ftp'"),
    "file-scheme": ("file:///etc/passwd", None, "scheme 'file'"),
    "no-host": ("http:///x.mp4", None, "no host"),
    "redirect-to-ftp": (None, _redirect(lambda s, r: "ftp://127.0.0.1/x.mp4"), "scheme 'ftp'"),
    "redirect-to-file": (None, _redirect(lambda s, r: "file:///etc/passwd"), "scheme 'file'"),
    "redirect-loop": (None, _redirect(lambda s, r: str(r.url)), "redirects"),
}


@pytest.mark.parametrize("case", list(REFUSED))
async def test_refused_download_url_fails_the_job_with_a_reason(tmp_path: Path, case: str) -> None:
    url, hook, reason = REFUSED[case]
    async with StandIn() as stand:
        if url is not None:
            stand.outputs = lambda s, t: [{"name": "0.mp4", "size": "20", "url": url}]
        stand.cdn_hook = hook
        outcome = await run_one(tmp_path, standin_env(stand.base_url), "--no-socket")
        assert stand.hits["Run"] == 1
    assert outcome.code == 1, outcome.text
    record = outcome.job()
    assert record["status"] == "failed"
    assert "output refused" in record["error"] and reason in record["error"], record["error"]
    assert reason in outcome.text
    assert_contained(tmp_path, outcome, allowed=(tmp_path / "in",))


# --- plain http when the API is https ------------------------------------------------------


def _openssl_cert(folder: Path) -> tuple[Path, Path] | None:
    if not shutil.which("openssl"):
        return None
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.mark.parametrize("via", ["listed", "redirect"])
async def test_https_api_refuses_plain_http_outputs(tmp_path: Path, via: str) -> None:
    (tmp_path / "tls").mkdir()
    tls = _openssl_cert(tmp_path / "tls")
    if tls is None:
        pytest.skip("openssl is not available to make a test certificate")
    async with StandIn() as plain, StandIn(tls=tls) as stand:
        http_url = f"{plain.origin}/cdn/1/0.mp4"
        if via == "listed":
            stand.outputs = lambda s, t: [
                {"name": "0.mp4", "size": str(len(s.body)), "url": http_url}
            ]
        else:
            stand.cdn_hook = _redirect(lambda s, r: http_url)
        env = standin_env(stand.base_url, SSL_CERT_FILE=str(tls[0]))
        outcome = await run_one(tmp_path, env, "--no-socket")
        assert stand.hits["Run"] == 1
        assert plain.hits["cdn"] == 0
    assert outcome.code == 1, outcome.text
    record = outcome.job()
    assert record["status"] == "failed"
    assert "plain http while the API base is https" in record["error"], record["error"]
    assert_contained(tmp_path, outcome, allowed=(tmp_path / "in", tmp_path / "tls"))


# --- lying sizes ---------------------------------------------------------------------------


async def _chunked(request: web.Request, body: bytes) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "video/mp4"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    for i in range(0, len(body), 4096):
        await response.write(body[i : i + 4096])
    await response.write_eof()
    return response


LIES: dict[str, tuple[Callable[..., Awaitable[Any]], str]] = {
    # the body (and its Content-Length) is longer than the task's declared size
    "longer-than-size": (lambda r, s: serve(r, s.body + b"x" * 5000), "exceeds the declared"),
    # no Content-Length at all and a body longer than the declared size
    "chunked-longer": (lambda r, s: _chunked(r, s.body + b"x" * 5000), "exceeds the declared"),
    # Content-Length agrees with a shorter body than the task declared
    "shorter-than-size": (lambda r, s: serve(r, s.body[:-100]), "disagrees with the task's size"),
}


@pytest.mark.parametrize("case", list(LIES))
async def test_body_not_matching_declared_size_is_never_saved(tmp_path: Path, case: str) -> None:
    hook, reason = LIES[case]
    async with StandIn() as stand:
        stand.cdn_hook = hook
        env = standin_env(stand.base_url)
        outcome = await run_one(tmp_path, env, "--no-socket")
        assert outcome.code == 4, outcome.text
        record = outcome.job()
        assert record["status"] == "downloading"  # paid for: kept for the next run, not failed
        assert not record["outputs"]
        assert reason in outcome.text, outcome.text
        assert not list(outcome.out_dir.glob("job-0000*"))
        assert_contained(tmp_path, outcome, allowed=(tmp_path / "in",))
        # The service mends its CDN: the next run fetches the file, without a second task.
        stand.cdn_hook = None
        again = await run_one(tmp_path, env, "--no-socket")
        assert again.code == 0, again.text
        assert stand.hits["Run"] == 1
    saved = again.job()["outputs"][0]
    assert (again.out_dir / saved["path"]).read_bytes() == stand.body


async def test_content_length_promising_more_than_sent_resumes_with_range(tmp_path: Path) -> None:
    """A Content-Length that lies (the connection ends half-way): the part is kept and the
    next request asks for the rest with Range."""
    ranges: list[str | None] = []

    async def cut_short(request: web.Request, stand: StandIn) -> web.StreamResponse | None:
        ranges.append(request.headers.get("Range"))
        if len(ranges) > 1:
            return None
        response = web.StreamResponse(headers={"Content-Type": "video/mp4"})
        response.content_length = len(stand.body)
        await response.prepare(request)
        await response.write(stand.body[: len(stand.body) // 2])
        assert request.transport is not None
        request.transport.close()
        return response

    async with StandIn() as stand:
        stand.cdn_hook = cut_short
        outcome = await run_one(tmp_path, standin_env(stand.base_url), "--no-socket")
    assert outcome.code == 0, outcome.text
    assert ranges[0] is None and ranges[1] == f"bytes={len(stand.body) // 2}-", ranges
    saved = outcome.job()["outputs"][0]
    assert (outcome.out_dir / saved["path"]).read_bytes() == stand.body
    assert_contained(tmp_path, outcome, allowed=(tmp_path / "in",))


# --- broken /Task/Detail replies -----------------------------------------------------------


def _bent_detail(kind: str, stand: StandIn, fields: dict[str, Any]) -> web.StreamResponse:
    task = stand.tasks[str(fields["taskid"])]
    if kind == "invalid-json":
        return web.Response(text='{"result": true, "tasklist": [', content_type="application/json")
    if kind == "html-200":
        return web.Response(text="<html>maintenance</html>", content_type="text/html")
    if kind == "not-an-object":
        return json_response([1, 2, 3])
    if kind == "tasklist-not-a-list":
        return json_response({"result": True, "errors": [], "tasklist": {"id": task["id"]}})
    if kind == "empty-tasklist":
        return json_response({"result": True, "errors": [], "tasklist": []})
    if kind == "other-task":
        other = {**task, "id": "999", "token": "someone-else"}
        return json_response(stand.envelope([other]))
    if kind == "task-without-status":
        body = stand.envelope([task])
        del body["tasklist"][0]["status"]
        return json_response(body)
    if kind == "outputs-not-a-list":
        body = stand.envelope([task])
        body["tasklist"][0]["outputs"] = "0.mp4"
        return json_response(body)
    raise AssertionError(kind)


BENT = [
    "invalid-json", "html-200", "not-an-object", "tasklist-not-a-list", "empty-tasklist",
    "other-task", "task-without-status", "outputs-not-a-list",
]  # fmt: skip


@pytest.mark.parametrize("kind", BENT)
async def test_a_burst_of_broken_detail_replies_is_tolerated(tmp_path: Path, kind: str) -> None:
    async def hook(request: web.Request, stand: StandIn) -> web.StreamResponse | None:
        if stand.hits["Detail"] > 3:
            return None
        return _bent_detail(kind, stand, await request.json())

    async with StandIn() as stand:
        stand.detail_hook = hook
        outcome = await run_one(tmp_path, standin_env(stand.base_url), "--no-socket")
        assert stand.hits["Run"] == 1
    assert outcome.code == 0, outcome.text
    assert outcome.job()["status"] == "succeeded"
    assert_contained(tmp_path, outcome, allowed=(tmp_path / "in",))


@pytest.mark.parametrize("kind", ["invalid-json", "other-task", "empty-tasklist"])
async def test_persistently_broken_detail_ends_with_the_reason(tmp_path: Path, kind: str) -> None:
    """Status replies that never make sense: --task-timeout stops the task, and the job's
    reason says what the status replies were."""

    async def hook(request: web.Request, stand: StandIn) -> web.StreamResponse | None:
        return _bent_detail(kind, stand, await request.json())

    expected = {
        "invalid-json": "not JSON",
        "other-task": "not the task asked for",
        "empty-tasklist": "empty task list",
    }[kind]
    async with StandIn(run_seconds=60) as stand:
        stand.detail_hook = hook
        env = standin_env(stand.base_url)
        outcome = await run_one(tmp_path, env, "--no-socket", "--task-timeout", "3")
        assert stand.hits["Run"] == 1
        assert stand.tasks["1"]["status"] == "task_cancel"  # stopped, as --task-timeout says
    assert outcome.code == 1, outcome.text
    record = outcome.job()
    assert record["status"] == "cancelled"
    assert "--task-timeout" in record["error"] and expected in record["error"], record["error"]
    assert_contained(tmp_path, outcome, allowed=(tmp_path / "in",))


async def test_numbers_where_strings_are_expected_are_accepted(tmp_path: Path) -> None:
    """String-vs-number confusion: ids, sizes, pexit, costs and times sent as numbers and
    ``parameters`` sent as JSON text."""

    async def run_hook(request: web.Request, stand: StandIn) -> web.StreamResponse:
        task = stand.tasks[str(len(stand.tasks))]
        return json_response(
            {"result": True, "errors": [], "taskid": int(task["id"]),
             "socketaccesstoken": task["token"]}
        )  # fmt: skip

    async def detail_hook(request: web.Request, stand: StandIn) -> web.StreamResponse:
        task = stand.tasks[str((await request.json())["taskid"])]
        record = stand.task_api(task)
        record.update(
            id=int(task["id"]), pexit=0, totalcost=0.45, elapsedseconds=1,
            createtime=int(task["created"]), endtime=int(task["created"]),
            parameters=json.dumps(task["parameters"]),
        )  # fmt: skip
        for out in record["outputs"]:
            out["size"] = len(stand.body)
        return json_response({"result": 1, "errors": [], "total": 1, "tasklist": [record]})

    async with StandIn() as stand:
        stand.run_hook, stand.detail_hook = run_hook, detail_hook
        outcome = await run_one(tmp_path, standin_env(stand.base_url), "--no-socket")
    assert outcome.code == 0, outcome.text
    record = outcome.job()
    assert record["status"] == "succeeded" and record["cost"] == pytest.approx(0.45)
    assert record["outputs"][0]["size"] == len(stand.body)
    assert_contained(tmp_path, outcome, allowed=(tmp_path / "in",))


# --- multi-gigabyte answers to JSON calls --------------------------------------------------


async def test_huge_run_answer_is_refused_unread_and_reconciled(tmp_path: Path) -> None:
    """/Run creates the task, then answers "5 GiB of JSON": the client refuses to read it,
    treats the /Run as ambiguous and finds the task through /Task/List, paying once."""

    async def run_hook(request: web.Request, stand: StandIn) -> web.StreamResponse:
        return await endless(request, stand, declared=5 * 1024**3, key="Run")

    async with StandIn() as stand:
        stand.run_hook = run_hook
        outcome = await run_one(tmp_path, standin_env(stand.base_url), "--no-socket")
        assert stand.hits["Run"] == 1 and len(stand.tasks) == 1
        assert stand.sent["Run"] < 64 * 1024**2
    assert outcome.code == 0, outcome.text
    assert "found task 1" in outcome.err
    assert outcome.job()["taskid"] == "1"
    assert_contained(tmp_path, outcome, allowed=(tmp_path / "in",))


async def test_endless_detail_answer_is_capped_and_retried(tmp_path: Path) -> None:
    async def detail_hook(request: web.Request, stand: StandIn) -> web.StreamResponse | None:
        if stand.hits["Detail"] > 2:
            return None
        return await endless(request, stand, declared=None, key="Detail")

    async with StandIn() as stand:
        stand.detail_hook = detail_hook
        outcome = await run_one(tmp_path, standin_env(stand.base_url), "--no-socket")
        # two answers of "8 GiB" were cut off near the 16 MiB cap, not read to the end
        assert stand.sent["Detail"] < 2 * 64 * 1024**2, stand.sent
    assert outcome.code == 0, outcome.text
    assert outcome.job()["status"] == "succeeded"
    assert_contained(tmp_path, outcome, allowed=(tmp_path / "in",))


async def test_output_never_served_is_paid_again_at_most_once(tmp_path: Path) -> None:
    """A CDN answering 404 for every output: the job is submitted again once (the service
    may have lost the file), then fails with the reason instead of paying forever."""

    async def gone(request: web.Request, stand: StandIn) -> web.StreamResponse:
        return web.Response(status=404, text="Not Found")

    async with StandIn() as stand:
        stand.cdn_hook = gone
        outcome = await run_one(tmp_path, standin_env(stand.base_url), "--no-socket")
        assert stand.hits["Run"] == 2
        # the next run leaves the failed job alone
        again = await run_one(tmp_path, standin_env(stand.base_url), "--no-socket")
        assert stand.hits["Run"] == 2
    assert outcome.code == 1 and again.code == 1, outcome.text
    record = outcome.job()
    assert record["status"] == "failed"
    assert "no longer serves this output" in record["error"], record["error"]
    assert_contained(tmp_path, outcome, allowed=(tmp_path / "in",))


async def test_task_finished_at_the_timeout_is_kept_not_cancelled(tmp_path: Path) -> None:
    """Status requests fail until --task-timeout fires; by then the task has finished, so Kill
    and Cancel refuse it. The finished (paid) video is fetched, not recorded as cancelled."""

    async def detail_hook(request: web.Request, stand: StandIn) -> web.StreamResponse | None:
        if stand.hits["Kill"] == 0:
            return web.Response(status=500, text="<html>500</html>", content_type="text/html")
        return None

    async with StandIn(run_seconds=0.5) as stand:
        stand.detail_hook = detail_hook
        env = standin_env(stand.base_url)
        outcome = await run_one(tmp_path, env, "--no-socket", "--task-timeout", "2")
        assert stand.hits["Run"] == 1 and stand.hits["Kill"] >= 1
    assert outcome.code == 0, outcome.text
    record = outcome.job()
    assert record["status"] == "succeeded"
    assert (outcome.out_dir / record["outputs"][0]["path"]).read_bytes() == stand.body
    assert_contained(tmp_path, outcome, allowed=(tmp_path / "in",))


async def test_one_output_arriving_wrong_does_not_stop_the_other_jobs(tmp_path: Path) -> None:
    """The first job's file keeps arriving longer than declared: that job waits for the next
    run, and the run meanwhile submits and finishes every other job."""

    async def cdn(request: web.Request, stand: StandIn) -> web.StreamResponse | None:
        if request.match_info["id"] == "1":
            return await serve(request, stand.body + b"x" * 5000)
        return None

    async with StandIn(run_seconds=0.4) as stand:
        stand.cdn_hook = cdn
        env = standin_env(stand.base_url)
        outcome = await run_one(tmp_path, env, "--no-socket", "--concurrency", "1", jobs=8)
        assert stand.hits["Run"] == 8
    assert outcome.code == 4, outcome.text
    statuses = {job: rec["status"] for job, rec in outcome.ledger["jobs"].items()}
    assert statuses.pop("job-0000") == "downloading"
    assert set(statuses.values()) == {"succeeded"}, statuses
    assert "exceeds the declared" in outcome.err
    assert_contained(tmp_path, outcome, allowed=(tmp_path / "in",))


async def test_task_that_cannot_be_stopped_is_kept_not_recorded_as_over(tmp_path: Path) -> None:
    """--task-timeout fires, but the service refuses Kill and Cancel while the task still runs:
    the job keeps its task id (it may yet finish and be paid for) and the run exits 4."""

    async def refuse(request: web.Request, stand: StandIn) -> web.StreamResponse:
        body = {"result": False, "errors": [{"code": 0, "message": "Task is not killable."}]}
        return json_response(body, 400)

    async with StandIn(run_seconds=60) as stand:
        stand.stop_hook = refuse
        env = standin_env(stand.base_url)
        outcome = await run_one(tmp_path, env, "--no-socket", "--task-timeout", "2")
        assert stand.hits["Run"] == 1 and stand.tasks["1"]["status"] == "task_start"
    assert outcome.code == 4, outcome.text
    record = outcome.job()
    assert record["status"] in ("queued", "running") and record["taskid"] == "1", record
    assert "stopping it failed" in outcome.err and "Task is not killable" in outcome.err
    assert_contained(tmp_path, outcome, allowed=(tmp_path / "in",))


async def test_uncertain_run_without_task_list_is_left_unresolved_not_paid_twice(
    tmp_path: Path,
) -> None:
    """The first /Run's answer is a 502 (it may have created the task) and /Task/List does
    not exist on this service: that job is left unresolved, the others finish, exit 4."""

    async def run_hook(request: web.Request, stand: StandIn) -> web.StreamResponse | None:
        if stand.hits["Run"] == 1:
            return web.Response(status=502, text="<html>Bad gateway</html>")
        return None

    async def list_hook(request: web.Request, stand: StandIn) -> web.StreamResponse:
        body = {"result": False, "errors": [{"code": 0, "message": "Error parsing url."}]}
        return json_response(body, 404)

    async with StandIn() as stand:
        stand.run_hook = run_hook
        stand.list_hook = list_hook
        outcome = await run_one(tmp_path, standin_env(stand.base_url), "--no-socket", jobs=3)
        assert stand.hits["Run"] == 3
    assert outcome.code == 4, outcome.text
    statuses = sorted(rec["status"] for rec in outcome.ledger["jobs"].values())
    assert statuses == ["succeeded", "succeeded", "unknown"]
    assert "could not be checked through /Task/List" in outcome.out
    assert "Traceback" not in outcome.err
