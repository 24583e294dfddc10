"""Finding definitions: the project's pinned file, the user cache (keyed by API base), the
package, then the service, fetched once over the real client and cached; ``--offline``;
unknown models; hostile services; secrets never in a cache file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from clihelp import REPO

from batch_runner.engine.api import load_for_run
from batch_runner.errors import ManifestError, ModelError
from batch_runner.models.resolver import Resolver
from batch_runner.models.store import read_definition, service_key, shipped_dir, write_definition
from batch_runner.sandbox import Sandbox, SandboxConfig

FAST = SandboxConfig(queue_seconds=0.02, run_seconds=(0.05, 0.1))
KLING = "model: klingai/kling-v3\njobs:\n  - {prompt: p, inputImageUrl: 'https://x/a.png'}\n"


def env_for(sb: Any, cache: Path, **extra: str) -> dict[str, str]:
    return {
        "WIRO_API_KEY": sb.api_key,
        "WIRO_API_SECRET": sb.api_secret or "",
        "WIRO_API_BASE": sb.base_url,
        "BATCH_RUNNER_CACHE_DIR": str(cache),
        **extra,
    }


async def test_fetched_once_cached_by_api_base_then_found_offline(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(KLING)
    cache = tmp_path / "cache"
    async with Sandbox(FAST) as sb:
        env = env_for(sb, cache)
        notes: list[str] = []
        manifest = await load_for_run(path, environ=env, on_note=notes.append)
        assert manifest.jobs[0].model == "klingai/kling-v3"
        stored = cache / "models" / service_key(sb.base_url) / "klingai" / "kling-v3.json"
        assert notes[0] == (
            f"fetched the definition of klingai/kling-v3 from {sb.base_url}; cached in {stored}"
        )
        assert any("'multiPrompt' has type 'json'" in n for n in notes[1:])
        again: list[str] = []
        await load_for_run(path, environ=env, on_note=again.append)
        assert again == [] and sb.stats()["requests"]["Tool/Detail"] == 1
    # the service is gone: the cache answers, offline
    offline = await load_for_run(path, environ=env, offline=True)
    assert offline.jobs[0].fingerprint == manifest.jobs[0].fingerprint
    text = stored.read_text()
    assert sb.api_key not in text and (sb.api_secret or "\0") not in text
    assert json.loads(text)["source"]["api_base"] == sb.base_url
    # another service's cache is another folder: nothing stands in for it
    other = {**env, "WIRO_API_BASE": "https://api.example.com/v1"}
    with pytest.raises(ManifestError) as caught:
        await load_for_run(path, environ=other, offline=True)
    (issue,) = caught.value.issues
    assert "model 'klingai/kling-v3' has no local definition" in issue
    assert "run `batch-runner models pull klingai/kling-v3`" in issue
    assert service_key("https://api.wiro.ai/v1") == "api.wiro.ai"
    assert service_key("https://api.example.com/v1") != service_key("https://api.example.com/v2")


async def test_lookup_order_project_then_cache_then_package(tmp_path: Path) -> None:
    pixverse = read_definition(shipped_dir() / "PixVerse" / "image-to-video-v5.json")
    tightened = dict(pixverse.schema)
    tightened["properties"] = {**pixverse.schema["properties"]}
    tightened["properties"]["prompt"] = {**tightened["properties"]["prompt"], "maxLength": 10}
    from dataclasses import replace

    cache = tmp_path / "cache"
    resolver = Resolver(cache_key="api.wiro.ai", cache_dir=cache, offline=True)
    assert resolver.resolve("PixVerse/image-to-video-v5", tmp_path).origin.startswith(
        str(shipped_dir())
    )
    titled = {**pixverse.tool, "title": "cached"}
    write_definition(cache / "models" / "api.wiro.ai", replace(pixverse, tool=titled))
    cached = Resolver(cache_key="api.wiro.ai", cache_dir=cache, offline=True)
    assert cached.resolve("PixVerse/image-to-video-v5", tmp_path).title == "cached"
    pinned_tool = {**pixverse.tool, "title": "pinned"}
    write_definition(tmp_path / "models", replace(pixverse, tool=pinned_tool, schema=tightened))
    pinned = Resolver(cache_key="api.wiro.ai", cache_dir=cache, offline=True)
    assert pinned.resolve("PixVerse/image-to-video-v5", tmp_path).title == "pinned"
    (tmp_path / "m.yaml").write_text(
        "jobs:\n  - {inputImageUrl: 'https://x/a.png', prompt: a long prompt here}\n"
    )
    from batch_runner.manifest.loader import load_manifest

    with pytest.raises(ManifestError) as caught:
        load_manifest(tmp_path / "m.yaml", resolver=pinned)
    assert "at most 10 are allowed" in caught.value.issues[0]  # the project's own schema


async def test_unknown_model_on_the_service_suggests_the_closest(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("model: klingai/kling-v9\njobs:\n  - {prompt: p}\n")
    async with Sandbox(FAST) as sb:
        with pytest.raises(ManifestError) as caught:
            await load_for_run(path, environ=env_for(sb, tmp_path / "cache"))
    (issue,) = caught.value.issues
    assert issue == (
        f"{path}:1: unknown model 'klingai/kling-v9': {sb.base_url} has no such model; did "
        "you mean 'klingai/kling-v3'?"
    )


async def test_without_credentials_the_message_says_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(KLING)
    env = {"BATCH_RUNNER_CACHE_DIR": str(tmp_path / "cache")}
    with pytest.raises(ManifestError) as caught:
        await load_for_run(path, environ=env)
    (issue,) = caught.value.issues
    assert "model 'klingai/kling-v3' has no local definition (looked in " in issue
    assert "No API key: set WIRO_API_KEY" in issue
    assert "Run `batch-runner models pull klingai/kling-v3` once that is fixed." in issue


def kling_record() -> dict[str, Any]:
    return json.loads((REPO / "tests" / "data" / "tools" / "klingai--kling-v3.json").read_text())


HOSTILE: list[tuple[str, Any, str]] = [
    ("not an object", {"result": True, "errors": [], "tool": ["x"]}, "not an object"),
    ("no tool", {"result": True, "errors": [], "tool": []}, "has no such model"),
    (
        "bad input name",
        {"result": True, "tool": [{**kling_record(), "parameters": [
            {"items": [{"id": "a b", "type": "text"}]}]}]},
        "describes 'klingai/kling-v3' in a way batch-runner cannot use: an input of group",
    ),
    (
        "another model",
        {"result": True, "tool": [{**kling_record(), "cleanslugproject": "other"}]},
        "the service answered about 'klingai/other'",
    ),
    ("huge", None, "refusing to read it"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "answer", "expected"), HOSTILE, ids=[h[0] for h in HOSTILE])
async def test_hostile_definitions_from_a_service_are_refused_clearly(
    tmp_path: Path, name: str, answer: Any, expected: str
) -> None:
    async def detail(_request: web.Request) -> web.StreamResponse:
        if answer is None:
            return web.Response(
                body=b'{"result": true, "tool": [{"x": "' + b"a" * (17 << 20) + b'"}]}'
            )
        return web.json_response(answer)

    async def listing(_request: web.Request) -> web.StreamResponse:
        return web.json_response({"result": True, "total": 0, "tool": []})

    app = web.Application(client_max_size=1 << 20)
    app.router.add_post("/v1/Tool/Detail", detail)
    app.router.add_post("/v1/Tool/List", listing)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    path = tmp_path / "m.yaml"
    path.write_text(KLING)
    env = {
        "WIRO_API_KEY": "k-hostile",
        "WIRO_API_BASE": f"http://127.0.0.1:{port}/v1",
        "BATCH_RUNNER_CACHE_DIR": str(tmp_path / "cache"),
    }
    try:
        with pytest.raises(ManifestError) as caught:
            await load_for_run(path, environ=env)
    finally:
        await runner.cleanup()
    (issue,) = caught.value.issues
    assert expected in issue
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").rglob("*.json"))


async def test_a_secret_echoed_in_a_record_never_reaches_the_cache(tmp_path: Path) -> None:
    key = "sk-live-0123456789abcdef"

    async def detail(_request: web.Request) -> web.StreamResponse:
        record = {**kling_record(), "readme": f"call me with {key}"}
        return web.json_response({"result": True, "tool": [record]})

    app = web.Application()
    app.router.add_post("/v1/Tool/Detail", detail)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    path = tmp_path / "m.yaml"
    path.write_text(KLING)
    env = {"WIRO_API_KEY": key, "WIRO_API_BASE": base, "BATCH_RUNNER_CACHE_DIR": str(tmp_path)}
    try:
        await load_for_run(path, environ=env)
    finally:
        await runner.cleanup()
    (stored,) = (tmp_path / "models").rglob("kling-v3.json")
    text = stored.read_text()
    assert key not in text and "***" in text
    from batch_runner.models.store import public_base

    assert (
        public_base("https://user:pw@h.example:8443/v1/?token=t#x") == "https://h.example:8443/v1"
    )


def test_resolver_errors_are_model_errors_with_exit_code_2() -> None:
    with pytest.raises(ModelError) as caught:
        Resolver(offline=True).resolve("../etc")
    assert caught.value.exit_code == 2 and "owner/name" in caught.value.message
