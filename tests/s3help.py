"""A real S3 API on loopback for the publishing tests: moto's server mode
(``moto.server.ThreadedMotoServer``) on port 0, with every request it answers recorded.

moto keeps its buckets in this process, shared by every server it runs, so each test takes
buckets of its own (:meth:`LocalS3.bucket`). Buckets are versioned: every completed upload
is one object version, which is how the tests count uploads.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import requests
from moto.server import ThreadedMotoServer

REGION = "us-east-1"
KEY_ID = "AKIAOPERATORTEST0001"
SECRET = "operator-test-secret-do-not-print-0001"


@dataclass
class Seen:
    method: str
    path: str
    status: int


@dataclass
class LocalS3:
    server: ThreadedMotoServer
    endpoint: str
    seen: list[Seen] = field(default_factory=list)
    #: seconds each object PUT waits before moto handles it (to catch uploads in flight)
    put_delay: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def client(self, service: str = "s3", **creds: str) -> Any:
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=creds.get("key_id", KEY_ID),
            aws_secret_access_key=creds.get("secret", SECRET),
        )

    def env(self, *, key_id: str = KEY_ID, secret: str = SECRET) -> dict[str, str]:
        """The variables obstore reads: what an operator sets for an S3-compatible store."""
        return {
            "AWS_ACCESS_KEY_ID": key_id,
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_REGION": REGION,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ALLOW_HTTP": "true",
        }

    def bucket(self, prefix: str = "b") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        s3 = self.client()
        s3.create_bucket(Bucket=name)
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        return name

    def versions(self, bucket: str) -> dict[str, int]:
        """Object key -> how many versions (completed uploads) it has."""
        found: dict[str, int] = {}
        pages = self.client().get_paginator("list_object_versions").paginate(Bucket=bucket)
        for page in pages:
            for version in page.get("Versions", []):
                found[version["Key"]] = found.get(version["Key"], 0) + 1
        return found

    def object_puts(self, bucket: str) -> list[Seen]:
        """Answered PUTs of objects (not of the bucket or its settings) in ``bucket``."""
        with self._lock:
            return [
                s
                for s in self.seen
                if s.method == "PUT" and s.path.startswith(f"/{bucket}/") and s.status == 200
            ]

    def metadata(self, bucket: str, key: str) -> dict[str, Any]:
        head = self.client().head_object(Bucket=bucket, Key=key)
        return {"size": head["ContentLength"], "etag": head["ETag"], "meta": head["Metadata"]}

    @contextlib.contextmanager
    def read_only_user(self) -> Iterator[dict[str, str]]:
        """Credentials of an IAM user that may read but not write, with moto enforcing IAM
        for the duration: a bucket that refuses writes, as a real one does."""
        iam = self.client("iam")
        name = f"reader-{uuid.uuid4().hex[:8]}"
        iam.create_user(UserName=name)
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"], "Resource": "*"}
            ],
        }
        iam.put_user_policy(UserName=name, PolicyName="read", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        self._auth("0")
        try:
            yield self.env(key_id=key["AccessKeyId"], secret=key["SecretAccessKey"])
        finally:
            self._auth("inf")

    def _auth(self, count: str) -> None:
        answer = requests.post(f"{self.endpoint}/moto-api/reset-auth", data=count, timeout=10)
        answer.raise_for_status()

    def wrap(self, app: Callable[..., Any]) -> Callable[..., Any]:
        def recording(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
            if method == "PUT" and self.put_delay and path.count("/") >= 2:
                time.sleep(self.put_delay)
            status: list[int] = []

            def start(code: str, headers: Any, exc_info: Any = None) -> Any:
                status.append(int(code.split()[0]))
                return start_response(code, headers, exc_info)

            body = app(environ, start)
            with self._lock:
                self.seen.append(Seen(method, path, status[0] if status else 0))
            return body

        return recording


@contextlib.contextmanager
def local_s3() -> Iterator[LocalS3]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    wsgi = server._server  # werkzeug's server; it reads .app for every request
    assert wsgi is not None
    host, port = wsgi.server_address[:2]  # the port 0 chose (get_host_and_port: moto >= 5.0.x)
    s3 = LocalS3(server, f"http://{host}:{port}")
    wsgi.app = s3.wrap(wsgi.app)
    try:
        yield s3
    finally:
        server.stop()
