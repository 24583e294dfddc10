"""Tests for batch_runner.download against a real aiohttp server on 127.0.0.1.

Each route of the server plays one well-behaved or hostile file host (see ``_Host``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
import random
import shutil
import ssl
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

import batch_runner
from batch_runner._files import PendingRenames
from batch_runner.engine import download as dl
from batch_runner.engine.download import (
    check_url,
    download_verified,
    output_paths,
    safe_name,
    verify_file,
)
from batch_runner.errors import (
    DiskFullError,
    DownloadError,
    IntegrityError,
    UnsafeDownloadError,
)

DATA = random.Random(7).randbytes(300_000)
SHA = hashlib.sha256(DATA).hexdigest()
CHUNK = 16 * 1024
REPO = Path(batch_runner.__file__).resolve().parents[1]


class _Host:
    """The test file host; ``log`` keeps ``(path, Range header)`` of every request."""

    def __init__(self) -> None:
        self.log: list[tuple[str, str | None]] = []
        self.hits: dict[str, int] = {}
        self.stop = asyncio.Event()
        self.base = self.https = ""

    def app(self) -> web.Application:
        app = web.Application()
        for name in dir(self):
            if name.startswith("r_"):
                app.router.add_get("/" + name[2:].replace("_", "-"), getattr(self, name))
        return app

    def _seen(self, request: web.Request) -> int:
        self.log.append((request.path, request.headers.get("Range")))
        self.hits[request.path] = self.hits.get(request.path, 0) + 1
        return self.hits[request.path]

    @staticmethod
    def _ranged(request: web.Request, data: bytes = DATA) -> web.Response:
        """Serve ``data`` honouring ``Range: bytes=N-`` like a normal file host."""
        rng = request.headers.get("Range", "")
        if not rng.startswith("bytes="):
            return web.Response(body=data)
        start = int(rng[6:].split("-")[0])
        if start >= len(data):
            return web.Response(status=416, headers={"Content-Range": f"bytes */{len(data)}"})
        return web.Response(
            status=206,
            body=data[start:],
            headers={"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"},
        )

    async def _partial(
        self, request: web.Request, declared: int, body: bytes
    ) -> web.StreamResponse:
        """Declare ``declared`` bytes, send ``body``, then drop the connection."""
        resp = web.StreamResponse()
        resp.content_length = declared
        await resp.prepare(request)
        await resp.write(body)
        assert request.transport is not None
        request.transport.close()
        return resp

    async def r_file(self, request: web.Request) -> web.StreamResponse:
        self._seen(request)
        return self._ranged(request)

    async def r_truncated(self, request: web.Request) -> web.StreamResponse:
        if self._seen(request) == 1:
            return await self._partial(request, len(DATA), DATA[:100_000])
        return self._ranged(request)

    async def r_ignore_range(self, request: web.Request) -> web.StreamResponse:
        self._seen(request)
        return web.Response(body=DATA)

    async def r_bad_range(self, request: web.Request) -> web.StreamResponse:
        self._seen(request)
        if "Range" in request.headers:  # answers a range that starts elsewhere
            cr = f"bytes 10-{len(DATA) - 1}/{len(DATA)}"
            return web.Response(status=206, body=DATA[10:], headers={"Content-Range": cr})
        return web.Response(body=DATA)

    async def r_cl_less(self, request: web.Request) -> web.StreamResponse:
        self._seen(request)
        resp = web.StreamResponse()
        resp.content_length = len(DATA) - 1000  # aiohttp sends only what it declares
        await resp.prepare(request)
        await resp.write(DATA)
        return resp

    async def r_cl_more(self, request: web.Request) -> web.StreamResponse:
        self._seen(request)
        return await self._partial(request, len(DATA) + 1000, DATA)

    async def _chunked(self, request: web.Request, total: int) -> web.StreamResponse:
        """A body of ``total`` bytes with no Content-Length, stopped when the client leaves."""
        self._seen(request)
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        block = b"z" * 65536
        try:
            for _ in range(total // len(block)):
                await resp.write(block)
            await resp.write(block[: total % len(block)])
            await resp.write_eof()
        except ConnectionError:
            pass
        return resp

    async def r_longer(self, request: web.Request) -> web.StreamResponse:
        return await self._chunked(request, len(DATA) + 5000)

    async def r_exact(self, request: web.Request) -> web.StreamResponse:
        return await self._chunked(request, len(DATA))

    async def r_huge(self, request: web.Request) -> web.StreamResponse:
        return await self._chunked(request, 64 * 1024 * 1024)

    async def r_huge_declared(self, request: web.Request) -> web.StreamResponse:
        self._seen(request)
        return await self._partial(request, 10 * 1024**3, b"x" * 1000)

    async def r_stall(self, request: web.Request) -> web.StreamResponse:
        self._seen(request)
        resp = web.StreamResponse()
        resp.content_length = len(DATA)
        await resp.prepare(request)
        await resp.write(DATA[:5000])
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), 5)
        assert request.transport is not None
        request.transport.close()
        return resp

    async def r_gzip(self, request: web.Request) -> web.StreamResponse:
        self._seen(request)
        return web.Response(body=DATA, headers={"Content-Encoding": "gzip"})

    async def r_missing(self, request: web.Request) -> web.StreamResponse:
        self._seen(request)
        return web.Response(status=404, text="gone")

    async def r_to_ftp(self, request: web.Request) -> web.StreamResponse:
        self._seen(request)
        raise web.HTTPFound("ftp://127.0.0.1/file")

    async def r_to_http(self, request: web.Request) -> web.StreamResponse:
        self._seen(request)
        raise web.HTTPFound(self.base + "/file")

    async def r_to_file(self, request: web.Request) -> web.StreamResponse:
        self._seen(request)
        raise web.HTTPFound("/file")  # relative Location

    async def r_loop(self, request: web.Request) -> web.StreamResponse:
        self._seen(request)
        raise web.HTTPFound("/loop")


def _openssl_cert(folder: Path) -> tuple[Path, Path] | None:
    """A throwaway self-signed certificate for 127.0.0.1, or None without openssl."""
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


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path] | None:
    return _openssl_cert(tmp_path_factory.mktemp("tls"))


@pytest.fixture
async def host(cert: tuple[Path, Path] | None) -> AsyncIterator[_Host]:
    h = _Host()
    runner = web.AppRunner(h.app(), shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    h.base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    if cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(*cert)
        tls = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
        await tls.start()
        h.https = f"https://127.0.0.1:{runner.addresses[1][1]}"
    yield h
    h.stop.set()
    await runner.cleanup()


@pytest.fixture
async def session(cert: tuple[Path, Path] | None) -> AsyncIterator[aiohttp.ClientSession]:
    ctx = ssl.create_default_context(cafile=str(cert[0])) if cert else None
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx or True)) as s:
        yield s


async def fetch(
    session: aiohttp.ClientSession, url: str, out: Path, rel: str = "job.mp4", **kw: object
) -> dl.DownloadResult:
    kw.setdefault("expected_size", len(DATA))
    kw.setdefault("allow_http", True)
    return await download_verified(session, url, out, rel, chunk_size=CHUNK, **kw)  # type: ignore[arg-type]


def part_of(out: Path, rel: str = "job.mp4") -> Path:
    return out / ".partial" / (rel.replace("/", "%2F") + ".part")


def files_in(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


# ----------------------------------------------------------------------------- happy paths


async def test_happy_path(host: _Host, session: aiohttp.ClientSession, tmp_path: Path) -> None:
    res = await fetch(session, host.base + "/file", tmp_path)
    assert (res.path, res.size, res.sha256) == ("job.mp4", len(DATA), SHA)
    assert (tmp_path / "job.mp4").read_bytes() == DATA
    assert files_in(tmp_path) == {"job.mp4"}  # the part was renamed, nothing left behind
    assert verify_file(tmp_path / "job.mp4", len(DATA), SHA)


async def test_a_caller_given_renames_is_left_the_folder_fsync(
    host: _Host, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """With ``renames`` the file is in place on return and its folders (the job's and the
    output folder, which gained the job's) are noted for the caller to sync before it
    records the file; without, nothing is left to the caller."""
    renames = PendingRenames()
    res = await fetch(session, host.base + "/file", tmp_path, "job/a.mp4", renames=renames)
    assert (tmp_path / "job" / "a.mp4").read_bytes() == DATA and res.sha256 == SHA
    assert renames.pending == {tmp_path / "job", tmp_path}
    renames.sync()
    assert not renames.pending
    await fetch(session, host.base + "/file", tmp_path, "b.mp4", expected_size=None)
    assert (tmp_path / "b.mp4").read_bytes() == DATA


async def test_a_small_output_hands_back_its_first_bytes(
    host: _Host, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """A body that fits one piece is never read back from disk to tell its type: the result
    carries its first bytes; a file assembled from a resumed part does not (read it)."""
    url = host.base + "/file"
    res = await download_verified(session, url, tmp_path, "job.mp4", expected_size=len(DATA),
                                  allow_http=True, chunk_size=4 * len(DATA))  # fmt: skip
    assert res.head == DATA[:64] == (tmp_path / "job.mp4").read_bytes()[:64]
    part_of(tmp_path, "again.mp4").write_bytes(DATA[:1000])
    resumed = await download_verified(session, url, tmp_path, "again.mp4",
                                      expected_size=len(DATA), allow_http=True,
                                      chunk_size=4 * len(DATA))  # fmt: skip
    assert resumed.head is None and resumed.sha256 == SHA


async def test_unknown_size_and_nested_path(
    host: _Host, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    res = await fetch(session, host.base + "/file", tmp_path, "job/a.mp4", expected_size=None)
    assert res.sha256 == SHA and (tmp_path / "job" / "a.mp4").read_bytes() == DATA


async def test_resume_after_truncated_body(
    host: _Host, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    with pytest.raises(IntegrityError, match="was cut short") as info:
        await fetch(session, host.base + "/truncated", tmp_path)
    kept = part_of(tmp_path).read_bytes()  # what was consumed before the drop (aiohttp
    assert 0 < len(kept) <= 100_000 and DATA.startswith(kept)  # discards its unread buffer)
    assert f"after {len(kept)} bytes" in str(info.value)
    assert not (tmp_path / "job.mp4").exists()
    res = await fetch(session, host.base + "/truncated", tmp_path)
    assert host.log == [("/truncated", None), ("/truncated", f"bytes={len(kept)}-")]
    assert res.sha256 == SHA and (tmp_path / "job.mp4").read_bytes() == DATA
    assert not part_of(tmp_path).exists()


async def test_complete_part_gets_416_and_is_installed(
    host: _Host, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    part_of(tmp_path).parent.mkdir(parents=True)
    part_of(tmp_path).write_bytes(DATA)
    res = await fetch(session, host.base + "/file", tmp_path)
    assert host.log == [("/file", f"bytes={len(DATA)}-")]
    assert res.sha256 == SHA and (tmp_path / "job.mp4").read_bytes() == DATA


async def test_restart_when_range_ignored(
    host: _Host, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    part_of(tmp_path).parent.mkdir(parents=True)
    part_of(tmp_path).write_bytes(b"garbage" * 1000)  # not a prefix: the 200 body replaces it
    res = await fetch(session, host.base + "/ignore-range", tmp_path)
    assert host.log == [("/ignore-range", "bytes=7000-")]
    assert res.sha256 == SHA and (tmp_path / "job.mp4").read_bytes() == DATA


async def test_restart_on_content_range_mismatch(
    host: _Host, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    part_of(tmp_path).parent.mkdir(parents=True)
    part_of(tmp_path).write_bytes(DATA[:5000])
    res = await fetch(session, host.base + "/bad-range", tmp_path)
    assert host.log == [("/bad-range", "bytes=5000-"), ("/bad-range", None)]
    assert res.sha256 == SHA


async def test_oversized_part_is_discarded(
    host: _Host, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    part_of(tmp_path).parent.mkdir(parents=True)
    part_of(tmp_path).write_bytes(DATA + b"extra")
    res = await fetch(session, host.base + "/file", tmp_path)
    assert host.log == [("/file", None)] and res.sha256 == SHA


async def test_relative_redirect_followed(
    host: _Host, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    res = await fetch(session, host.base + "/to-file", tmp_path)
    assert res.sha256 == SHA and [p for p, _ in host.log] == ["/to-file", "/file"]


# ----------------------------------------------------------------------------- hostile bodies


async def test_content_length_declares_less(
    host: _Host, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    with pytest.raises(IntegrityError, match="disagrees with the task's size"):
        await fetch(session, host.base + "/cl-less", tmp_path)
    assert not (tmp_path / "job.mp4").exists()
    # Without a size from the service, a short-but-consistent body is all one can know.
    res = await fetch(session, host.base + "/cl-less", tmp_path, expected_size=None)
    assert res.size == len(DATA) - 1000


async def test_content_length_declares_more(
    host: _Host, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    with pytest.raises(IntegrityError, match="Content-Length 301000 exceeds the declared"):
        await fetch(session, host.base + "/cl-more", tmp_path)
    with pytest.raises(IntegrityError, match="cut short"):  # the body ends early
        await fetch(session, host.base + "/cl-more", tmp_path, expected_size=None)
    assert not (tmp_path / "job.mp4").exists()


async def test_body_longer_than_expected_size(
    host: _Host, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    with pytest.raises(IntegrityError, match="exceeds the declared 300000 bytes"):
        await fetch(session, host.base + "/longer", tmp_path)
    assert files_in(tmp_path) == set()  # the known-bad part is deleted


async def test_body_shorter_than_expected_size(
    host: _Host, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    with pytest.raises(IntegrityError, match="received 300000 bytes, expected 300001"):
        await fetch(session, host.base + "/exact", tmp_path, expected_size=len(DATA) + 1)
    assert not (tmp_path / "job.mp4").exists()


async def test_huge_body_stops_at_max_bytes(
    host: _Host, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    with pytest.raises(UnsafeDownloadError, match="exceeds the cap of 1048576"):
        await fetch(session, host.base + "/huge", tmp_path, expected_size=None, max_bytes=2**20)
    assert files_in(tmp_path) == set()
    with pytest.raises(UnsafeDownloadError, match="Content-Length 10737418240"):
        await fetch(session, host.base + "/huge-declared", tmp_path, expected_size=None)
    with pytest.raises(UnsafeDownloadError, match="over the cap"):
        await fetch(session, host.base + "/file", tmp_path, expected_size=5 * 1024**3)


async def test_stall_times_out_and_keeps_part(
    host: _Host, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    with pytest.raises(IntegrityError, match=r"stalled \(no data for 0.3 s\) after 5000 bytes"):
        await fetch(session, host.base + "/stall", tmp_path, read_timeout=0.3)
    assert part_of(tmp_path).read_bytes() == DATA[:5000]


async def test_encoded_body_and_http_errors(
    host: _Host, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    with pytest.raises(IntegrityError, match="encoded body"):
        await fetch(session, host.base + "/gzip", tmp_path)
    with pytest.raises(DownloadError, match="HTTP 404"):
        await fetch(session, host.base + "/missing", tmp_path)
    with pytest.raises(DownloadError, match=r"could not fetch http://127\.0\.0\.1:1/x") as info:
        await fetch(session, "http://127.0.0.1:1/x?token=secret", tmp_path)
    assert "secret" not in str(info.value)  # signed URLs keep their tokens out of messages


# ----------------------------------------------------------------------------- URLs and redirects


@pytest.mark.parametrize(
    "url", ["ftp://h/x", "file:///etc/passwd", "javascript:alert(1)", "//h/x", "", "https:///x"]
)
def test_check_url_refuses_other_schemes(url: str) -> None:
    with pytest.raises(UnsafeDownloadError):
        check_url(url, allow_http=True)


def test_check_url_http_only_when_allowed() -> None:
    check_url("https://cdn.example/x.mp4", allow_http=False)
    check_url("HTTP://cdn.example/x.mp4", allow_http=True)
    with pytest.raises(
        UnsafeDownloadError, match=r"x\.mp4: plain http while the API base is https"
    ):
        check_url("http://cdn.example/x.mp4", allow_http=False)


async def test_redirects_checked(
    host: _Host, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    with pytest.raises(UnsafeDownloadError, match="scheme 'ftp'"):
        await fetch(session, host.base + "/to-ftp", tmp_path)
    with pytest.raises(UnsafeDownloadError, match="more than 5 redirects"):
        await fetch(session, host.base + "/loop", tmp_path)
    with pytest.raises(UnsafeDownloadError, match="plain http"):
        await fetch(session, host.base + "/file", tmp_path, allow_http=False)
    assert files_in(tmp_path) == set()


async def test_https_downgrade_refused(
    host: _Host, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    if not host.https:
        pytest.skip("openssl is not available to make a test certificate")
    res = await fetch(session, host.https + "/file", tmp_path, allow_http=False)
    assert res.sha256 == SHA
    with pytest.raises(UnsafeDownloadError, match="plain http"):
        await fetch(session, host.https + "/to-http", tmp_path, "b.mp4", allow_http=False)
    assert not (tmp_path / "b.mp4").exists()
    await fetch(session, host.https + "/to-http", tmp_path, "c.mp4", allow_http=True)


async def test_session_with_credentials_refused(host: _Host, tmp_path: Path) -> None:
    async with aiohttp.ClientSession(headers={"x-api-key": "k"}) as s:
        with pytest.raises(UnsafeDownloadError, match="default headers"):
            await fetch(s, host.base + "/file", tmp_path)


# ----------------------------------------------------------------------------- names and paths

HOSTILE = ["../../etc/passwd", "/abs/path.mp4", "a\x00b.mp4", "x" * 500 + ".mp4", "..", "",
           ".hidden", "C:\\win\\evil.mp4", "con.mp4", "a/../../b", " . ", "\u202egnp.exe",
           "日本語" * 100 + ".mp4", ".partial", "ledger.json"]  # fmt: skip


@pytest.mark.parametrize("name", HOSTILE)
def test_safe_name_is_one_harmless_component(name: str) -> None:
    out = safe_name(name, fallback="output-1")
    assert out and "/" not in out and "\\" not in out and "\x00" not in out
    assert not out.startswith(".") and out not in ("..", ".")
    assert len(out) <= 100 and len(out.encode()) <= 200


def test_safe_name_examples() -> None:
    assert safe_name("../../etc/passwd", fallback="f") == "passwd"
    assert safe_name("/abs/path.mp4", fallback="f") == "path.mp4"
    assert safe_name("a\x00b.mp4", fallback="f") == "ab.mp4"
    assert safe_name("..", fallback="f") == safe_name("", fallback="f") == "f"
    assert safe_name(".hidden", fallback="f") == "hidden"
    assert safe_name("con.mp4", fallback="f") == "_con.mp4"
    long = safe_name("x" * 500 + ".mp4", fallback="f")
    assert long.endswith(".mp4") and len(long) == 100
    assert safe_name("...", fallback="..") == "file"


@pytest.mark.parametrize("name", HOSTILE)
async def test_hostile_names_land_inside(
    name: str, host: _Host, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    paths = output_paths("job-1", [(name, "video/mp4"), (name, "video/mp4")])
    paths += output_paths("job-2", [(name, "")])
    for rel in paths:
        res = await fetch(session, host.base + "/file", out, rel)
        assert (out / res.path).resolve().is_relative_to(out.resolve())
    assert len(files_in(out)) == 3 and not {".partial", "ledger.json"} & files_in(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_output_paths_layout() -> None:
    assert output_paths("j", [("video.mp4", "video/mp4")]) == ["j.mp4"]
    assert output_paths("j", [("", "video/webm")]) == ["j.webm"]
    assert output_paths("j", [("clip", "application/x-unknown")]) == ["j.mp4"]
    assert output_paths("j", [("a.mp4", ""), ("A.MP4", ""), ("a.mp4", ""), ("", "image/png")]) == [
        "j/a.mp4", "j/A-2.MP4", "j/a-3.mp4", "j/output-4.png",
    ]  # fmt: skip
    assert output_paths("ledger", [("x.json", "")]) == ["_ledger.json"]
    assert output_paths("../evil", [("x.mp4", "")]) == ["evil.mp4"]
    assert output_paths("j", []) == []


@pytest.mark.parametrize(
    "rel", ["../x.mp4", "/abs.mp4", "a/../../b", ".partial/x", "a\\b", "", "a//b", "ledger.json"]
)
async def test_download_refuses_unsafe_rel_path(
    rel: str, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    with pytest.raises(UnsafeDownloadError):
        await fetch(session, "http://127.0.0.1:1/x", tmp_path, rel)


async def test_symlinked_folder_refused(
    host: _Host, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "job").symlink_to(elsewhere)
    with pytest.raises(UnsafeDownloadError, match="resolves outside"):
        await fetch(session, host.base + "/file", out, "job/a.mp4")
    assert list(elsewhere.iterdir()) == []


def test_verify_file(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(DATA)
    assert verify_file(f, len(DATA), SHA) and verify_file(f, len(DATA), SHA.upper())
    assert not verify_file(f, len(DATA) - 1, SHA)
    assert not verify_file(f, len(DATA), "0" * 64)
    assert not verify_file(tmp_path / "missing", 1, SHA)
    assert not verify_file(tmp_path, 1, SHA)


# ----------------------------------------------------------------------------- disk full


async def test_disk_full_error(
    host: _Host, session: aiohttp.ClientSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(fd: int, data: bytes, hasher: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(dl, "_write_hashed", full)
    with pytest.raises(DiskFullError, match=r"no space left on device while writing job\.mp4 "):
        await fetch(session, host.base + "/file", tmp_path)
    assert not (tmp_path / "job.mp4").exists()


async def test_cancel_waits_for_the_running_write(
    host: _Host, session: aiohttp.ClientSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancelling mid-write must not close the descriptor under the writing thread."""
    started, seen = threading.Event(), []
    real = dl._write_hashed

    def slow(fd: int, data: bytes, hasher: Any) -> None:
        started.set()
        time.sleep(0.2)
        seen.append(os.fstat(fd).st_size >= 0)  # raises EBADF if closed meanwhile
        real(fd, data, hasher)

    monkeypatch.setattr(dl, "_write_hashed", slow)
    task = asyncio.create_task(fetch(session, host.base + "/file", tmp_path))
    await asyncio.to_thread(started.wait, 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.to_thread(dl._IO_POOL.submit(lambda: None).result)
    for _ in range(50):
        if seen:
            break
        await asyncio.sleep(0.02)
    assert seen == [True] and not (tmp_path / "job.mp4").exists()


_LIMITED = """
import asyncio, resource, signal, sys
from pathlib import Path
import aiohttp
from batch_runner.engine.download import download_verified
from batch_runner.errors import DiskFullError
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed
resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
async def main():
    async with aiohttp.ClientSession() as s:
        await download_verified(s, sys.argv[1], Path(sys.argv[2]), "job.mp4",
                                expected_size=int(sys.argv[3]), allow_http=True, chunk_size=16384)
try:
    asyncio.run(main())
except DiskFullError as e:
    print(e)
    sys.exit(3)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX resource limits")
async def test_disk_full_real_limit_then_resume(
    host: _Host, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """A real file-size limit in a child process: a clear error, nothing final, then resume."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", textwrap.dedent(_LIMITED), host.base + "/file", str(tmp_path),
        str(len(DATA)), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 3, err.decode()
    assert "while writing job.mp4" in out.decode() and "free space and re-run" in out.decode()
    assert not (tmp_path / "job.mp4").exists()
    assert 0 < part_of(tmp_path).stat().st_size <= 100_000
    res = await fetch(session, host.base + "/file", tmp_path)  # space is back: resumes
    assert res.sha256 == SHA and host.log[-1][1] is not None


async def test_a_symlink_at_the_final_name_is_replaced_not_followed(
    host: _Host, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    victim = elsewhere / "victim.txt"
    victim.write_text("keep me")
    (out / "job.mp4").symlink_to(victim)
    result = await fetch(session, host.base + "/file", out, "job.mp4")
    assert victim.read_text() == "keep me"
    assert not (out / "job.mp4").is_symlink() and (out / "job.mp4").read_bytes() == DATA
    assert result.sha256 == SHA


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=120))
def test_the_fast_name_check_agrees_with_the_full_one(name: str) -> None:
    from batch_runner.engine import naming

    assert naming._clean(name) == naming._sanitise(name)
