"""A minimal Language Server Protocol client for Red Hat's yaml-language-server (the server
behind VS Code's YAML extension and Neovim's yamlls), to check what an editor makes of a
manifest and its schema: diagnostics, completion, hover.

The server is found through ``$YAML_LANGUAGE_SERVER`` (its executable) or on ``PATH``
(``npm install -g yaml-language-server``); tests using it are skipped when there is none.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

SETTINGS: dict[str, Any] = {
    "yaml": {
        "validate": True,
        "completion": True,
        "hover": True,
        "schemaStore": {"enable": False},
        "schemas": {},
    }
}


def find_server() -> str | None:
    return os.environ.get("YAML_LANGUAGE_SERVER") or shutil.which("yaml-language-server")


class YamlLanguageServer:
    """One server process over stdio; answers its configuration requests from
    :data:`SETTINGS` and keeps the diagnostics it publishes."""

    def __init__(self, command: str, root: Path) -> None:
        self.proc = subprocess.Popen(
            [command, "--stdio"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.replies: queue.Queue[dict[str, Any]] = queue.Queue()
        self.diagnostics: dict[str, list[dict[str, Any]]] = {}
        self.next_id = 0
        threading.Thread(target=self._read, daemon=True).start()
        capabilities = {
            "textDocument": {"completion": {"completionItem": {"snippetSupport": False}}},
            "workspace": {"configuration": True},
        }
        self.request(
            "initialize",
            {"processId": os.getpid(), "rootUri": root.as_uri(), "capabilities": capabilities},
        )
        self.notify("initialized", {})
        self.notify("workspace/didChangeConfiguration", {"settings": SETTINGS})

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()

    def _send(self, message: dict[str, Any]) -> None:
        data = json.dumps({"jsonrpc": "2.0", **message}).encode()
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(data) + data)
        self.proc.stdin.flush()

    def _read(self) -> None:
        stream = self.proc.stdout
        assert stream is not None
        while True:
            length = 0
            while True:
                line = stream.readline()
                if not line:
                    return
                if not line.strip():
                    break
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            body = json.loads(stream.read(length))
            method = body.get("method")
            if method == "workspace/configuration":
                items = body["params"]["items"]
                answer = [SETTINGS.get(item.get("section", "")) for item in items]
                self._send({"id": body["id"], "result": answer})
            elif method == "textDocument/publishDiagnostics":
                self.diagnostics[body["params"]["uri"]] = body["params"]["diagnostics"]
            elif method is not None and "id" in body:
                self._send({"id": body["id"], "result": None})
            elif method is None:
                self.replies.put(body)

    def notify(self, method: str, params: dict[str, Any]) -> None:
        self._send({"method": method, "params": params})

    def request(self, method: str, params: dict[str, Any]) -> Any:
        self.next_id += 1
        mine = self.next_id
        self._send({"id": mine, "method": method, "params": params})
        while True:
            reply = self.replies.get(timeout=30)
            if reply.get("id") == mine:
                return reply.get("result")

    def open(self, path: Path, text: str) -> str:
        uri = path.as_uri()
        document = {"uri": uri, "languageId": "yaml", "version": 1, "text": text}
        self.notify("textDocument/didOpen", {"textDocument": document})
        return uri

    def wait_diagnostics(self, uri: str, timeout: float = 20.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while uri not in self.diagnostics:
            if time.monotonic() > deadline:
                raise AssertionError(f"no diagnostics for {uri}")
            time.sleep(0.05)
        return self.diagnostics.pop(uri)

    def complete(self, uri: str, line: int, character: int) -> list[str]:
        position = {"line": line, "character": character}
        found = self.request(
            "textDocument/completion", {"textDocument": {"uri": uri}, "position": position}
        )
        items = found["items"] if isinstance(found, dict) else found or []
        return [item["label"] for item in items]

    def hover(self, uri: str, line: int, character: int) -> str:
        position = {"line": line, "character": character}
        found = self.request(
            "textDocument/hover", {"textDocument": {"uri": uri}, "position": position}
        )
        contents = (found or {}).get("contents", "")
        return str(contents.get("value", "") if isinstance(contents, dict) else contents)
