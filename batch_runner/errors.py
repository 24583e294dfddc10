"""The one exception tree of batch-runner.

Every error the tool raises on purpose derives from :class:`BatchRunnerError`. The class
tells the caller what to do next, and carries the process exit code the CLI uses::

    BatchRunnerError                    exit 1
    ├── UsageError                      exit 2   bad flags or arguments
    ├── ManifestError                   exit 2   the manifest is invalid (carries every issue)
    ├── ModelError                      exit 2   a model has no usable definition (what to do)
    ├── LockedError                     exit 3   another run holds the output folder
    ├── TrackingLost                    exit 4   status requests kept failing; the task is kept
    ├── LedgerError                     exit 1   the ledger or journal cannot be read or written
    ├── DownloadError                   exit 1   an output could not be fetched safely
    │   ├── UnsafeDownloadError                  scheme, redirect or name refused
    │   ├── OutputGoneError                      the URL no longer serves the file (403/404/410)
    │   ├── IntegrityError                       size or hash mismatch, truncated body
    │   └── DiskFullError                        no space left while writing
    ├── PublishError                    exit 4   an upload to object storage failed (file kept)
    └── ApiError                        exit 1   the service said no, or could not be reached
        ├── AuthError                   exit 2   credentials rejected: fix them, never retry
        ├── InvalidInputError           exit 2   code 0: a parameter is wrong, never retry
        ├── NotFoundError                        code 1: no such task, never retry
        ├── ConcurrencyLimitError                code 96: retry later with fewer tasks in flight
        ├── InsufficientBalanceError    exit 4   code 97: top up; never retry
        ├── RateLimitedError                     HTTP 429: retry after ``retry_after``
        ├── ServerError                          HTTP 5xx/408 or a non-JSON body: retry
        ├── ProtocolError                        a reply of the wrong shape: retry (bounded)
        └── TransportError                       connection refused, dropped or timed out: retry

For ``/Run`` every :class:`ApiError` says through ``may_have_created`` whether the task may
exist on the service (the request may have reached it) or certainly does not. The run engine
reconciles the former through ``/Task/List`` and never blindly resubmits it.

Messages never contain the API key or secret: they are built from status codes, error codes
and the service's own texts, and :func:`redact` scrubs any registered secret as a last line of
defence.
"""

from __future__ import annotations

from typing import ClassVar

_SECRETS: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember a credential so that :func:`redact` removes it from any text."""
    if value and len(value) >= 4:
        _SECRETS.add(value)


def redact(text: str) -> str:
    """Replace every registered secret in ``text`` by ``***``."""
    for secret in _SECRETS:
        if secret in text:
            text = text.replace(secret, "***")
    return text


_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x00, 0x09), *range(0x0B, 0x20), 0x7F)}


def printable(text: str) -> str:
    """``redact`` plus control characters made visible: text from the service (error
    messages, file names) must not move the cursor or recolour an operator's terminal."""
    return redact(text).translate(_CONTROL)


class BatchRunnerError(Exception):
    """Root of every error batch-runner raises on purpose."""

    exit_code: ClassVar[int] = 1

    def __init__(self, message: str) -> None:
        self.message = redact(message)
        super().__init__(self.message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class UsageError(BatchRunnerError):
    """The command line asks for something impossible."""

    exit_code = 2


class ManifestError(BatchRunnerError):
    """The manifest is invalid; ``issues`` holds every problem found (already formatted)."""

    exit_code = 2

    def __init__(self, message: str, issues: list[str] | None = None) -> None:
        super().__init__(message)
        self.issues: list[str] = [redact(i) for i in (issues or [])]


class ModelError(BatchRunnerError):
    """A model has no usable definition: not pinned, cached or shipped, and not fetched
    (``--offline``, no credentials, unknown to the service, or described unusably)."""

    exit_code = 2


class LockedError(BatchRunnerError):
    """Another run holds the output folder's lock."""

    exit_code = 3


class TrackingLost(BatchRunnerError):
    """Status requests kept failing for longer than the error budget.

    The task still exists on the service; the job keeps its task id and the next run
    picks it up. Exit code 4: work is left.
    """

    exit_code = 4


class LedgerError(BatchRunnerError):
    """The ledger or its journal cannot be read or written."""


class DownloadError(BatchRunnerError):
    """An output file could not be downloaded and verified."""

    retryable: ClassVar[bool] = True


class UnsafeDownloadError(DownloadError):
    """The URL, a redirect or the file name was refused for safety."""

    retryable = False


class OutputGoneError(DownloadError):
    """The output URL answers 403, 404 or 410: the service no longer serves the file."""

    retryable = False


class IntegrityError(DownloadError):
    """The body did not match its declared size or hash, or was cut short."""


class DiskFullError(DownloadError):
    """The disk ran out of space while writing an output."""

    retryable = False


class PublishError(BatchRunnerError):
    """An output could not be uploaded to object storage (``--publish``), or the object
    did not match once there. The local file is never touched; the job stays ``succeeded``
    and the next run uploads it. ``permanent`` says retrying in this run cannot help (writes
    refused, the bucket missing, credentials rejected): publishing stops for the run."""

    exit_code = 4

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent

    @property
    def retryable(self) -> bool:
        return not self.permanent


class ApiError(BatchRunnerError):
    """The service refused a call or could not be reached.

    ``code`` is the API's error code when it gave one, ``status`` the HTTP status when there
    was an answer, ``endpoint`` the API path called. ``may_have_created`` is only meaningful
    for ``/Run``: True when the task may exist on the service despite the error.
    """

    retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        status: int | None = None,
        endpoint: str = "",
        may_have_created: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.endpoint = endpoint
        self.may_have_created = may_have_created
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, code={self.code!r}, status={self.status!r}, "
            f"endpoint={self.endpoint!r}, may_have_created={self.may_have_created!r})"
        )


class AuthError(ApiError):
    """The service rejected the credentials (unknown key, bad signature, mode mismatch)."""

    exit_code = 2


class InvalidInputError(ApiError):
    """Code 0: the service rejected a parameter. Fix the input; retrying cannot help."""

    exit_code = 2


class NotFoundError(ApiError):
    """Code 1: the service knows no such task."""


class ConcurrencyLimitError(ApiError):
    """Code 96: the project's concurrency limit is reached. Retry when a slot frees up."""

    retryable = True


class InsufficientBalanceError(ApiError):
    """Code 97: the account balance is too low. Top up, then re-run."""

    exit_code = 4


class RateLimitedError(ApiError):
    """HTTP 429: too many requests. Retry after ``retry_after`` seconds when given."""

    retryable = True


class ServerError(ApiError):
    """HTTP 5xx or 408, or a body that is not JSON: a fault on the service's side."""

    retryable = True


class ProtocolError(ApiError):
    """The service answered JSON of an unexpected shape."""

    retryable = True


class TransportError(ApiError):
    """No usable answer: refused, reset, dropped or timed out."""

    retryable = True
