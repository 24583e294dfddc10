"""Fetching definitions from the service: ``/Tool/Detail`` and ``/Tool/List`` through
:class:`~batch_runner.wiro.client.WiroClient`.

Manifest loading is synchronous (a plain function), the client is async: a
:class:`ClientFetcher` runs each call to completion on an event loop. Given the caller's
running loop (``loop``), it hands the call to that loop and waits from the loading thread
(the manifest is then loaded with ``asyncio.to_thread``), which is what a service running in
the same loop (the in-process sandbox) needs; without one it runs the call in a fresh loop on
a short-lived thread, which works whether or not the calling thread has a loop of its own.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from .definition import ModelDefinition, definition_from_tool
from .store import public_base

if TYPE_CHECKING:  # asyncio, tenacity and aiohttp load only when something is fetched
    import asyncio

    from ..wiro.client import WiroClient
    from ..wiro.retry import RetryPolicy

T = TypeVar("T")

#: Longest one fetch may take, retries included (seconds).
FETCH_TIMEOUT = 120.0


@lru_cache(maxsize=1)
def fetch_policy() -> RetryPolicy:
    """Retries of a definition fetch: a few, quickly (someone is waiting at a prompt)."""
    from ..wiro.retry import RetryPolicy

    return RetryPolicy(max_attempts=3, max_elapsed=30.0, base_delay=0.3, max_delay=3.0)


class Fetcher(Protocol):
    """What the resolver needs from a service: a tool record, and names for a "did you
    mean". ``where`` names the service in messages; ``cache_key`` is its cache folder, None
    when its definitions must not be cached (the in-process sandbox)."""

    where: str
    cache_key: str | None

    def definition(self, model: str) -> ModelDefinition: ...

    def names(self, search: str) -> list[str]: ...


def tool_names(records: list[dict[str, Any]]) -> list[str]:
    """``owner/name`` of each summary record (clean slugs first)."""
    names = []
    for record in records:
        owner = record.get("cleanslugowner") or record.get("slugowner")
        project = record.get("cleanslugproject") or record.get("slugproject")
        if isinstance(owner, str) and isinstance(project, str) and owner and project:
            names.append(f"{owner}/{project}")
    return names


async def fetch_definition(client: WiroClient, model: str) -> ModelDefinition:
    """The definition of ``model`` as the service describes it now (raises ApiError, or
    DefinitionProblem for a record that cannot be used)."""
    tool = await fetch_policy().call(lambda: client.tool_detail(model))
    base = public_base(client.base_url)
    return definition_from_tool(
        tool,
        requested=model,
        api_base=base,
        fetched_at=time.time(),
        origin=f"fetched from {base}",
    )


async def search_names(client: WiroClient, search: str, limit: int = 50) -> list[str]:
    policy = fetch_policy()
    _total, records = await policy.call(lambda: client.tool_list(search=search, limit=limit))
    return tool_names(records)


class ClientFetcher:
    """Fetches through a fresh :class:`WiroClient` per call, made by ``make_client``."""

    def __init__(
        self,
        make_client: Callable[[], WiroClient],
        *,
        where: str,
        cache_key: str | None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.make_client = make_client
        self.where = where
        self.cache_key = cache_key
        self.loop = loop

    def _call(self, work: Callable[[WiroClient], Awaitable[T]]) -> T:
        import asyncio
        import concurrent.futures

        async def job() -> T:
            async with self.make_client() as client:
                return await work(client)

        if self.loop is not None and self.loop.is_running():
            try:
                current = asyncio.get_running_loop()
            except RuntimeError:
                current = None
            if current is self.loop:
                raise RuntimeError(
                    "a definition fetch from the loop's own thread would deadlock: load the "
                    "manifest with asyncio.to_thread (batch_runner.engine.api.load_for_run)"
                )
            future = asyncio.run_coroutine_threadsafe(job(), self.loop)
            return future.result(FETCH_TIMEOUT)
        with concurrent.futures.ThreadPoolExecutor(1, "batch-runner-fetch") as pool:
            return pool.submit(asyncio.run, job()).result(FETCH_TIMEOUT)

    def definition(self, model: str) -> ModelDefinition:
        return self._call(lambda client: fetch_definition(client, model))

    def names(self, search: str) -> list[str]:
        return self._call(lambda client: search_names(client, search))
