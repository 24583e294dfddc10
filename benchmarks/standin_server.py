"""A minimal Wiro stand-in for benchmarks: instant tasks at a few microseconds of CPU each.

    python benchmarks/standin_server.py [--port 0] [--workers 1] [--output-bytes 2048]

Why not the sandbox: the sandbox (aiohttp's web server, task state machines, a WebSocket)
costs about as much CPU per task as the runner itself, so a benchmark against it measures
both at once and saturates the server first. This is a hand-written ``asyncio.Protocol``
HTTP/1.1 server with keep-alive that speaks just enough of the API for the runner polling
(``--no-socket``): ``POST /v1/Run/{owner}/{model}`` (multipart or JSON; the body is only
kept for ``/Task/List``), ``POST /v1/Task/Detail`` by ``taskid`` or ``tasktoken`` (every
task is already ``task_postprocess_end`` with ``pexit`` "0" and one output; values are
strings like the real service's), ``POST /v1/Task/List`` (the answering worker's recent
tasks, newest first, with their parameters), ``GET`` of an output (``Content-Length``,
``Range``), and ``GET /__stats``. Nothing is checked but, with ``--api-key``, the key.

Task ids carry everything (worker ``w`` of ``N`` issues ``w+1, w+1+N, ...``), so
``--workers N`` processes share one port with SO_REUSEPORT and need no shared state beyond a
few counters in shared memory. The first line on stdout is
``standin ready base_url=URL pids=PID,...``; on SIGTERM the supervisor prints
``standin stopped {json}`` with the workers' exact CPU (rusage) per task.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import mmap
import os
import re
import signal
import socket
import sys
import time
from collections import deque

try:
    import orjson

    loads, dumps = orjson.loads, orjson.dumps
except ImportError:  # pragma: no cover - orjson is a dependency of the runner
    loads = json.loads

    def dumps(obj: object) -> bytes:
        return json.dumps(obj, separators=(",", ":")).encode()


# shared counters, one row of SLOTS per worker
RUN, DETAIL, LIST, GET, OTHER, CPU_US, CONNS = range(7)
SLOTS = 8
NAMES = {RUN: "Run", DETAIL: "Task/Detail", LIST: "Task/List", GET: "GET output", OTHER: "other"}
RECENT = 5000  # tasks kept per worker for /Task/List (the runner scans at most 5,000)

HEAD = b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n"
REASONS = {200: b"OK", 206: b"Partial Content", 404: b"Not Found", 416: b"Range Not Satisfiable",
           401: b"Unauthorized", 400: b"Bad Request"}  # fmt: skip
JSON = b"application/json"
RUN_BODY = b'{"result":true,"errors":[],"taskid":"%d","socketaccesstoken":"tok%d"}'
TASK = (
    b'{"id":"%d","uuid":"standin-%d","socketaccesstoken":"tok%d",'
    b'"status":"task_postprocess_end","pexit":"0","debugoutput":"","debugerror":"",'
    b'"elapsedseconds":"0","totalcost":"%s","cps":"0","createtime":"%d","starttime":"%d",'
    b'"endtime":"%d","canceltime":"0","callbackurl":"","parameters":%s,'
    b'"outputs":[{"id":"%d","name":"%s","contenttype":"video/mp4","size":"%d",'
    b'"url":"%s/out/%d/%s","expiretime":"0","ispublic":"1"}]}'
)
DETAIL_BODY = b'{"result":true,"errors":[],"total":"1","tasklist":[%s]}'
NOT_FOUND = b'{"result":false,"errors":[{"code":"1","message":"There is no task yet."}]}'
BAD_URL = b'{"result":false,"errors":[{"code":"0","message":"Error parsing url."}]}'
BAD_KEY = (
    b'{"result":false,"errors":[{"code":"0","message":"Project authorization is not founded."}]}'
)
_NAME = re.compile(rb'name="([^"]*)"')


class Worker:
    """One serving process: its counters row, its recent tasks, the constant bits."""

    def __init__(self, index: int, workers: int, counters: memoryview, args: argparse.Namespace):
        self.index, self.workers, self.c = index, workers, counters
        self.row = index * SLOTS
        self.next_id = index + 1
        self.recent: deque[tuple[int, int, bytes, bytes]] = deque(maxlen=RECENT)
        self.payload = (b"\x00\x00\x00\x18ftypmp42" + os.urandom(args.output_bytes))[
            : args.output_bytes
        ]
        self.name = b"output.mp4"
        self.cost = f"{args.cost:g}".encode()
        self.key = f"\r\nx-api-key: {args.api_key}".lower().encode() if args.api_key else b""
        self.origin = b""  # set once the port is known
        self.started = time.time()

    def issued(self, taskid: int) -> bool:
        """Was ``taskid`` issued by some worker (each one's /Run count is shared)?"""
        if taskid < 1:
            return False
        owner = (taskid - 1) % self.workers
        return (taskid - 1) // self.workers < self.c[owner * SLOTS + RUN]

    def task(self, taskid: int, created: int, params: bytes = b"{}") -> bytes:
        now = int(time.time())
        return TASK % (
            taskid, taskid, taskid, self.cost, created or now, created or now, now, params,
            taskid, self.name, len(self.payload), self.origin, taskid, self.name,
        )  # fmt: skip

    def stats(self) -> bytes:
        c, n = self.c, self.workers
        c[self.row + CPU_US] = int(time.process_time() * 1e6)
        requests = {name: sum(c[w * SLOTS + k] for w in range(n)) for k, name in NAMES.items()}
        cpu = sum(c[w * SLOTS + CPU_US] for w in range(n)) / 1e6
        tasks = requests["Run"]
        return dumps({
            "workers": n, "pid": os.getpid(), "tasks_created": tasks, "requests": requests,
            "connections": sum(c[w * SLOTS + CONNS] for w in range(n)), "cpu_s": cpu,
            "cpu_per_task_ms": cpu / tasks * 1000 if tasks else None,
            "uptime_s": time.time() - self.started,
        })  # fmt: skip


def parameters(head: bytes, lower: bytes, body: bytes) -> dict[str, str]:
    """The inputs of a /Run body, multipart or JSON (only for /Task/List: rare, not timed)."""
    at = lower.find(b"\r\ncontent-type:")
    end = lower.find(b"\r\n", at + 2)
    ctype = head[at + 15 : end if end >= 0 else len(head)].strip() if at >= 0 else b""
    if ctype.lower().startswith(b"multipart/"):
        boundary = ctype.split(b"boundary=", 1)[-1].split(b";")[0].strip(b' "')
        found = {}
        for part in body.split(b"--" + boundary):
            headers, sep, value = part.partition(b"\r\n\r\n")
            name = _NAME.search(headers)
            if sep and name:
                text = value.removesuffix(b"\r\n").decode("utf-8", "replace")
                found[name.group(1).decode()] = text
        return found
    try:
        data = loads(body) if body.strip() else {}
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


class Http(asyncio.Protocol):
    """One keep-alive connection: parse requests as they come, answer each at once."""

    __slots__ = ("buf", "t", "w")

    def __init__(self, worker: Worker) -> None:
        self.w = worker
        self.buf = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t: asyncio.Transport = transport  # type: ignore[assignment]
        self.w.c[self.w.row + CONNS] += 1

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buf[:end]
            lower = head.lower()
            at = lower.find(b"\r\ncontent-length:")
            if at >= 0:
                stop = lower.find(b"\r\n", at + 17)
                size = int(lower[at + 17 : stop if stop >= 0 else end])
            elif b"\r\ntransfer-encoding: chunked" in lower:
                body, rest = dechunk(buf, end + 4)
                if body is None:
                    break
                buf = rest
                self.handle(head, lower, body)
                continue
            else:
                size = 0
            if len(buf) < end + 4 + size:
                if b"\r\nexpect: 100-continue" in lower and len(buf) == end + 4:
                    self.t.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                break
            body = buf[end + 4 : end + 4 + size]
            buf = buf[end + 4 + size :]
            self.handle(head, lower, body)
        self.buf = buf

    def reply(self, status: int, body: bytes, ctype: bytes = JSON, extra: bytes = b"") -> None:
        self.t.write(HEAD % (status, REASONS[status], ctype, len(body), extra) + body)

    def handle(self, head: bytes, lower: bytes, body: bytes) -> None:
        w, c = self.w, self.w.c
        sp = head.find(b" ")
        path = head[sp + 1 : head.find(b" ", sp + 1)]
        if head.startswith(b"POST"):
            if w.key and w.key not in lower:
                c[w.row + OTHER] += 1
                self.reply(401, BAD_KEY)
            elif path.startswith(b"/v1/Run/"):
                c[w.row + RUN] += 1
                taskid, w.next_id = w.next_id, w.next_id + w.workers
                w.recent.append((taskid, int(time.time()), head, body))
                self.reply(200, RUN_BODY % (taskid, taskid))
            elif path == b"/v1/Task/Detail":
                c[w.row + DETAIL] += 1
                self.reply(200, self.detail(body))
            elif path == b"/v1/Task/List":
                c[w.row + LIST] += 1
                self.reply(200, self.task_list(body))
            else:
                c[w.row + OTHER] += 1
                self.reply(404, BAD_URL)
        elif path.startswith(b"/out/"):
            c[w.row + GET] += 1
            self.output(path, lower)
        elif path.startswith(b"/__stats"):
            self.reply(200, w.stats())
        else:
            c[w.row + OTHER] += 1
            self.reply(404, BAD_URL)
        if b"\r\nconnection: close" in lower or head.endswith(b"HTTP/1.0", 0, head.find(b"\r\n")):
            self.t.close()

    def detail(self, body: bytes) -> bytes:
        try:
            data = loads(body)
            key = data.get("taskid") or str(data.get("tasktoken", "")).removeprefix("tok")
            taskid = int(key)
        except (ValueError, TypeError, AttributeError):
            return NOT_FOUND
        if not self.w.issued(taskid):
            return NOT_FOUND
        return DETAIL_BODY % self.w.task(taskid, 0)

    def task_list(self, body: bytes) -> bytes:
        try:
            data = loads(body) if body.strip() else {}
            start, limit = int(data.get("start", 0)), min(int(data.get("limit", 20)), 100)
        except (ValueError, TypeError, AttributeError):
            start, limit = 0, 20
        recent = list(reversed(self.w.recent))[start : start + limit]
        records = [
            self.w.task(taskid, created, dumps(parameters(head, head.lower(), raw)))
            for taskid, created, head, raw in recent
        ]
        return b'{"result":true,"errors":[],"total":"%d","tasklist":[%s]}' % (
            len(self.w.recent), b",".join(records)
        )  # fmt: skip

    def output(self, path: bytes, lower: bytes) -> None:
        payload, size = self.w.payload, len(self.w.payload)
        at = lower.find(b"\r\nrange: bytes=")
        if at < 0:
            self.reply(200, payload, b"video/mp4", b"Accept-Ranges: bytes\r\n")
            return
        stop = lower.find(b"\r\n", at + 15)
        first, _, last = lower[at + 15 : stop if stop >= 0 else len(lower)].partition(b"-")
        try:
            lo = int(first) if first.strip() else size - int(last)
            hi = int(last) if first.strip() and last.strip() else size - 1
        except ValueError:
            lo, hi = 0, size - 1
        if lo >= size or lo < 0:
            self.reply(416, b"", b"video/mp4", b"Content-Range: bytes */%d\r\n" % size)
            return
        hi = min(hi, size - 1)
        extra = b"Content-Range: bytes %d-%d/%d\r\n" % (lo, hi, size)
        self.reply(206, payload[lo : hi + 1], b"video/mp4", extra)


def dechunk(buf: bytes, at: int) -> tuple[bytes | None, bytes]:
    """A chunked body starting at ``at``: (body, rest of the buffer), or (None, buf) if short."""
    parts, pos = [], at
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None, buf
        size = int(buf[pos:eol].split(b";")[0], 16)
        if len(buf) < eol + 2 + size + 2:
            return None, buf
        if size == 0:
            trailer = buf.find(b"\r\n\r\n", eol)
            if trailer < 0:
                return None, buf
            return b"".join(parts), buf[trailer + 4 :]
        parts.append(buf[eol + 2 : eol + 2 + size])
        pos = eol + 2 + size + 2


def listener(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if hasattr(socket, "SO_REUSEPORT"):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def serve(worker: Worker, sock: socket.socket, ready: int, loop_name: str) -> None:
    """Serve on ``sock`` until SIGTERM; write one byte to ``ready`` once listening."""
    if loop_name == "uvloop":
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(loop.create_server(lambda: Http(worker), sock=sock))

    def beat() -> None:  # keeps this worker's CPU in the shared counters fresh
        worker.c[worker.row + CPU_US] = int(time.process_time() * 1e6)
        loop.call_later(0.25, beat)

    beat()
    loop.add_signal_handler(signal.SIGTERM, loop.stop)
    loop.add_signal_handler(signal.SIGINT, loop.stop)
    os.write(ready, b"x")
    os.close(ready)
    loop.run_forever()
    server.close()
    os._exit(0)  # nothing to flush; skip a slow teardown of hundreds of connections


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1, help="processes (SO_REUSEPORT)")
    parser.add_argument("--output-bytes", type=int, default=2048, help="size of every output")
    parser.add_argument("--cost", type=float, default=0.05, help="totalcost of every task (USD)")
    parser.add_argument("--api-key", default="", help="answer 401 unless x-api-key is this")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default=None,
                        help="event loop (default: uvloop when installed)")  # fmt: skip
    args = parser.parse_args()
    if args.loop is None:
        try:
            import uvloop  # noqa: F401

            args.loop = "uvloop"
        except ImportError:
            args.loop = "asyncio"
    first = listener(args.host, args.port)
    port = first.getsockname()[1]
    origin = f"http://{args.host}:{port}".encode()
    shared = mmap.mmap(-1, args.workers * SLOTS * 8)
    counters = memoryview(shared).cast("q")
    read_end, write_end = os.pipe()
    pids = []
    for index in range(args.workers):
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            sock = first if index == 0 else listener(args.host, port)
            if index:
                first.close()
            worker = Worker(index, args.workers, counters, args)
            worker.origin = origin
            serve(worker, sock, write_end, args.loop)
        pids.append(pid)
    first.close()
    os.close(write_end)
    got = b""
    while len(got) < args.workers:
        chunk = os.read(read_end, args.workers)
        if not chunk:
            sys.exit("standin: a worker failed to start")
        got += chunk
    started = time.time()
    print(f"standin ready base_url={origin.decode()}/v1 pids={','.join(map(str, pids))} "
          f"loop={args.loop}", flush=True)  # fmt: skip
    supervise(pids, counters, args.workers, started)


def supervise(pids: list[int], c: memoryview, workers: int, started: float) -> None:
    """Wait for SIGTERM, pass it on, reap the workers and print their exact rusage."""

    stopping = False

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    cpu, left = 0.0, set(pids)
    while left:
        pid, _status, usage = os.wait4(-1, 0)
        left.discard(pid)
        cpu += usage.ru_utime + usage.ru_stime
        if left and not stopping:
            stopping = True
            forward(signal.SIGTERM, None)  # a worker ended on its own: stop the others too
    requests = {name: sum(c[w * SLOTS + k] for w in range(workers)) for k, name in NAMES.items()}
    tasks = requests["Run"]
    print("standin stopped " + json.dumps({
        "workers": workers, "tasks_created": tasks, "requests": requests, "cpu_s": cpu,
        "cpu_per_task_ms": cpu / tasks * 1000 if tasks else None,
        "uptime_s": time.time() - started,
    }), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
