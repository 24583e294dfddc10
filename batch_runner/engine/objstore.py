"""Object storage through obstore: open a ``--publish`` target, look at an object, upload a
file and check it arrived.

obstore (``pip install 'batch-runner[storage]'``; 0.8 or later, which keeps object metadata on
multipart uploads: the sha256 that lets a resume recognise an object it uploaded) reads
credentials and endpoints from each store's standard environment variables and files: for S3
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_REGION``,
``AWS_ENDPOINT_URL`` (R2, a local S3) and ``AWS_ALLOW_HTTP=true`` for plain http; for GCS
``GOOGLE_SERVICE_ACCOUNT`` or application default credentials; for Azure
``AZURE_STORAGE_ACCOUNT_NAME`` with a key, SAS or identity. Nothing here reads or holds a
credential: the target URL may carry neither user information nor a query (where SAS tokens
live), the store's configuration is never printed, and every error message is cut to its first
line with URL queries removed and known secrets redacted before it reaches a log, the ledger or
an exception.
"""

from __future__ import annotations

import mimetypes
import os
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import PublishError, UsageError, redact, register_secret

#: URL schemes obstore opens as a store (``https``: S3, R2 or Azure addresses, else WebDAV).
SCHEMES = frozenset({"s3", "s3a", "gs", "az", "azure", "abfs", "abfss", "adl", "file", "https"})
#: Stores that keep user metadata (the sha256 attribute); the local file store does not.
_METADATA_SCHEMES = frozenset({"s3", "s3a", "gs", "az", "azure", "abfs", "abfss", "adl", "https"})
#: Environment variables that hold store secrets: scrubbed from any message, in case a
#: library ever echoes one.
SECRET_VARIABLES = (
    "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_TOKEN", "AWS_SSE_CUSTOMER_KEY_BASE64",
    "AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_ACCESS_KEY", "AZURE_STORAGE_MASTER_KEY",
    "AZURE_STORAGE_SAS_KEY", "AZURE_STORAGE_SAS_TOKEN", "AZURE_STORAGE_TOKEN",
    "AZURE_CLIENT_SECRET", "GOOGLE_SERVICE_ACCOUNT_KEY",
)  # fmt: skip
#: The object metadata key holding the uploaded file's sha256 (S3: ``x-amz-meta-sha256``).
SHA_KEY = "sha256"
#: obstore's own retries per request (5xx, dropped connections); the run's retry policy
#: retries whole uploads on top, with backoff.
_STORE_RETRY: dict[str, Any] = {"max_retries": 3, "retry_timeout": timedelta(seconds=60)}
_QUERY = re.compile(r"(\w+://[^\s?\"'<>]+)\?[^\s\"'<>]*")


def check_target_url(url: str, public_base: str | None = None) -> str:
    """The target URL without its trailing slash; UsageError when it cannot be one."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in SCHEMES:
        raise UsageError(
            f"--publish needs an object-store URL (s3://bucket/prefix, gs://, az://, "
            f"file:///path), not {parts.scheme + '://' if parts.scheme else repr(url)}."
        )
    if parts.username or parts.password or parts.query or parts.fragment:
        raise UsageError(
            "--publish URLs may not carry credentials, a query or a fragment: give the store's "
            "credentials in its environment variables (AWS_ACCESS_KEY_ID, ...)."
        )
    if parts.scheme != "file" and not parts.netloc:
        raise UsageError(f"--publish {parts.scheme}:// URL names no bucket or container.")
    if public_base is not None:
        base = urlsplit(public_base)
        if base.scheme not in ("http", "https") or not base.netloc:
            raise UsageError("--publish-public-url must be an http(s) address.")
        if base.username or base.password or base.query:
            raise UsageError("--publish-public-url may not carry credentials or a query.")
    return url.rstrip("/")


def clean(exc: BaseException) -> str:
    """A store error as one safe line: its class, its first line, no URL queries, no
    secrets, at most 300 characters."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = _QUERY.sub(r"\1?…", text)
    if len(text) > 300:
        text = text[:297] + "..."
    return redact(text)


@dataclass(frozen=True)
class Target:
    """An opened ``--publish`` target: ``url`` as given (no trailing slash) and its store,
    whose keys are paths relative to the URL's prefix."""

    url: str
    store: Any
    metadata: bool

    def __repr__(self) -> str:  # the store's repr may show its configuration
        return f"Target({self.url!r})"


def open_target(url: str) -> Target:
    """Open the store named by ``url``, configured from the process environment as obstore
    reads it (UsageError naming the extra when obstore is missing, or naming what is wrong
    with the URL)."""
    url = check_target_url(url)
    for name in SECRET_VARIABLES:
        register_secret(os.environ.get(name))
    try:
        from obstore.store import from_url
    except ImportError:
        raise UsageError("--publish needs obstore: pip install 'batch-runner[storage]'.") from None
    scheme = urlsplit(url).scheme.lower()
    try:
        if scheme == "file":
            Path(urlsplit(url).path).mkdir(parents=True, exist_ok=True)
            store = from_url(url + "/")
        else:
            store = from_url(url, retry_config=_STORE_RETRY)  # type: ignore[call-overload]
    except Exception as exc:  # obstore raises ValueError, OSError and its own BaseError
        raise UsageError(f"--publish {url} cannot be opened: {clean(exc)}") from None
    return Target(url, store, scheme in _METADATA_SCHEMES)


@dataclass(frozen=True)
class Remote:
    """What the store says about an object."""

    size: int
    etag: str | None
    sha256: str | None = None

    def matches(self, size: int, sha256: str, known_etag: str | None = None) -> bool:
        """The object holds that file: same size, and the recorded sha256 metadata, or
        (stores without metadata) the ETag recorded when we uploaded it."""
        if self.size != size:
            return False
        if self.sha256 is not None:
            return self.sha256 == sha256
        return known_etag is not None and self.etag == known_etag


def as_publish_error(exc: BaseException, doing: str) -> PublishError:
    """A store error as a PublishError; ``permanent`` when retrying cannot help."""
    from obstore import exceptions as ox

    permanent_types: tuple[type[BaseException], ...] = (
        ox.PermissionDeniedError, ox.UnauthenticatedError, ox.InvalidPathError,
        ox.NotSupportedError, ox.UnknownConfigurationKeyError, NotImplementedError,
        PermissionError, ValueError,
    )  # fmt: skip
    if isinstance(exc, PublishError):
        return exc
    if isinstance(exc, permanent_types):
        return PublishError(f"the store refused to {doing} ({clean(exc)})", permanent=True)
    if isinstance(exc, FileNotFoundError) and doing.startswith("upload"):
        return PublishError(
            f"the bucket or container does not exist ({clean(exc)})", permanent=True
        )
    return PublishError(f"could not {doing} ({clean(exc)})")


async def stat(target: Target, key: str) -> Remote | None:
    """The object at ``key``, None when there is none (PublishError when unreadable)."""
    import obstore

    try:
        if target.metadata:
            got = await obstore.get_async(target.store, key, options={"head": True})
            meta, attributes = got.meta, got.attributes
        else:
            meta, attributes = await obstore.head_async(target.store, key), {}
    except FileNotFoundError:
        return None
    except Exception as exc:
        raise as_publish_error(exc, f"read {key}") from None
    sha = attributes.get(SHA_KEY)
    return Remote(int(meta["size"]), meta.get("e_tag"), sha if isinstance(sha, str) else None)


async def upload_verified(
    target: Target,
    key: str,
    path: Path,
    *,
    size: int,
    sha256: str,
    part_size: int,
    part_concurrency: int = 4,
    content_type: str | None = None,
) -> Remote:
    """Upload ``path`` to ``key`` (in parts of ``part_size`` when larger), then check the
    store holds ``size`` bytes under the ETag the upload returned. PublishError otherwise."""
    import obstore

    attributes: dict[str, str] = {}
    if target.metadata:
        attributes = {
            "Content-Type": content_type
            or mimetypes.guess_type(path.name)[0]
            or "application/octet-stream",
            SHA_KEY: sha256,
        }
    try:
        put = await obstore.put_async(
            target.store,
            key,
            path,
            attributes=attributes or None,
            chunk_size=part_size,
            max_concurrency=part_concurrency,
        )
    except Exception as exc:
        raise as_publish_error(exc, f"upload {key}") from None
    remote = await stat(target, key)
    if remote is None or remote.size != size:
        got = "nothing" if remote is None else f"{remote.size} bytes"
        raise PublishError(f"{key}: the store holds {got} after uploading {size} bytes")
    etag = put.get("e_tag")
    if etag and remote.etag and remote.etag != etag:
        raise PublishError(f"{key}: the store's ETag changed under the upload")
    return Remote(remote.size, etag or remote.etag, remote.sha256)
