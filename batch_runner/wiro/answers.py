"""Reading the service's answers: what a reply means, as a success body or an error class.

Pure functions of the status, the headers and the bytes received (the client does the I/O):
which answers are errors (HTTP status, ``result: false``, codes 0/1/96/97/98/99, texts that
mean bad credentials), whether a ``/Run`` error may still have created a task, and what a
``Retry-After`` asks for. Both documented error styles are read: HTTP status codes, and HTTP
200 with ``result: false``.
"""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime
from typing import Any

import orjson

from ..errors import (
    ApiError,
    AuthError,
    ConcurrencyLimitError,
    InsufficientBalanceError,
    InvalidInputError,
    NotFoundError,
    ProtocolError,
    RateLimitedError,
    ServerError,
)
from .records import as_int

_AUTH_HINTS = ("authorization", "signature", "api key", "apikey", "x-api-key", "sign in")


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time())


def error_from_answer(
    endpoint: str, status: int, body: Any, *, retry_after: float | None = None
) -> ApiError:
    """The error class for an answer that was received but is not a success."""
    errors = body.get("errors") if isinstance(body, dict) else None
    first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
    code = as_int(first.get("code"))
    text = str(first.get("message") or "").strip()[:500]
    where = f"{endpoint} answered"
    if status == 429:
        return RateLimitedError(
            f"{where} HTTP 429 (rate limited){': ' + text if text else ''}.",
            code=code,
            status=status,
            endpoint=endpoint,
            retry_after=retry_after,
        )
    if status == 408 or status >= 500:
        return ServerError(
            f"{where} HTTP {status}, a server-side failure{': ' + text if text else ''}.",
            code=code,
            status=status,
            endpoint=endpoint,
            retry_after=retry_after,
        )
    lowered = text.lower()
    if status in (401, 403) or code in (98, 99) or any(h in lowered for h in _AUTH_HINTS):
        return AuthError(
            f"The service rejected the credentials: {text or f'HTTP {status}'} "
            "Check WIRO_API_KEY and WIRO_API_SECRET (a signature project needs both).",
            code=code,
            status=status,
            endpoint=endpoint,
        )
    if code == 96:
        return ConcurrencyLimitError(
            f"{where} code 96: the project's concurrency limit is reached"
            f"{' (' + text + ')' if text else ''}.",
            code=code,
            status=status,
            endpoint=endpoint,
            retry_after=retry_after,
        )
    if code == 97:
        return InsufficientBalanceError(
            f"{where} code 97: insufficient balance{' (' + text + ')' if text else ''}. "
            "Top up the account, then re-run: finished work is kept.",
            code=code,
            status=status,
            endpoint=endpoint,
        )
    if code == 1:
        return NotFoundError(
            f"{where} code 1: not found{' (' + text + ')' if text else ''}.",
            code=code,
            status=status,
            endpoint=endpoint,
        )
    if status == 404 and (code is None or "parsing url" in lowered):
        return InvalidInputError(
            f"{where} HTTP 404 ({text or 'unknown path'}): "
            "check the model name and the API base URL.",
            code=code,
            status=status,
            endpoint=endpoint,
        )
    if code == 0 or 400 <= status < 500:
        return InvalidInputError(
            f"{where} that the request is invalid: {text or f'HTTP {status}'}.",
            code=code,
            status=status,
            endpoint=endpoint,
        )
    return ApiError(
        f"{where} an error{' (code ' + str(code) + ')' if code is not None else ''}: "
        f"{text or f'HTTP {status}'}.",
        code=code,
        status=status,
        endpoint=endpoint,
    )


def success_body(
    endpoint: str,
    status: int,
    raw: bytes | None,
    *,
    retry_after: float | None,
    creates_task: bool,
    max_bytes: int,
) -> dict[str, Any]:
    """The JSON object of a successful answer; else the error it stands for.

    ``raw`` is None when the body was longer than ``max_bytes`` (refused unread). For a
    ``/Run`` (``creates_task``) every error says through ``may_have_created`` whether the
    task may exist anyway: a broken success answer or a gateway failure may have reached the
    backend; a clear refusal did not.
    """
    ambiguous = creates_task and (status == 408 or status >= 500)
    if raw is None:
        if status < 300:
            raise ProtocolError(
                f"{endpoint} answered more than {max_bytes} bytes; refusing to read it.",
                status=status,
                endpoint=endpoint,
                may_have_created=creates_task,
            )
        raw = b""  # an oversized error page: its status alone classifies it
    try:
        body = orjson.loads(raw) if raw.strip() else None
    except orjson.JSONDecodeError:
        body = None
        if status < 400:
            raise ProtocolError(
                f"{endpoint} answered HTTP {status} with a body that is not JSON.",
                status=status,
                endpoint=endpoint,
                may_have_created=creates_task,
            ) from None
    if (
        status >= 300
        or not isinstance(body, dict)
        or body.get("result") not in (True, "true", 1, "1")
    ):
        if status < 300 and not isinstance(body, dict):
            raise ProtocolError(
                f"{endpoint} answered JSON that is not an object.",
                status=status,
                endpoint=endpoint,
                may_have_created=creates_task,
            )
        if status < 300 and isinstance(body, dict) and not body.get("errors"):
            raise ProtocolError(
                f"{endpoint} answered without a result or any error.",
                status=status,
                endpoint=endpoint,
                may_have_created=creates_task,
            )
        error = error_from_answer(endpoint, status, body, retry_after=retry_after)
        error.may_have_created = ambiguous
        raise error
    return body
