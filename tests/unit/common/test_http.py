"""The base HTTP app over a real socket: health, metrics, problem+json, bearer auth, no tracebacks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from secondnum.http import ProblemError, add_readiness, bound_port, make_app, read_json, serve, set_draining


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, web.Application, dict[str, bool]]]:
    state = {"db": True}
    app = make_app("test", tokens=["s3cret"])

    async def db_ok() -> bool:
        return state["db"]

    add_readiness(app, "mongo", db_ok)

    async def echo(request: web.Request) -> web.Response:
        body = await read_json(request)
        if "fail" in body:
            raise ProblemError(422, "Unprocessable Content", "field 'fail' is invalid", field="fail")
        return web.json_response(body)

    async def crash(request: web.Request) -> web.Response:
        raise RuntimeError("secret internals")

    app.router.add_post("/api/v1/echo", echo)
    app.router.add_get("/api/v1/crash", crash)
    runner = await serve(app, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{bound_port(runner)}", app, state
    finally:
        await runner.cleanup()


AUTH = {"Authorization": "Bearer s3cret"}


async def test_health_and_readiness(server: tuple[str, web.Application, dict[str, bool]]) -> None:
    base, app, state = server
    async with aiohttp.ClientSession() as s:
        assert (await s.get(f"{base}/health/live")).status == 200
        r = await s.get(f"{base}/health/ready")
        assert r.status == 200 and (await r.json())["checks"] == {"mongo": True}
        state["db"] = False
        assert (await s.get(f"{base}/health/ready")).status == 503
        state["db"] = True
        set_draining(app)
        r = await s.get(f"{base}/health/ready")
        assert r.status == 503 and (await r.json())["draining"] is True


async def test_metrics_exposed(server: tuple[str, web.Application, dict[str, bool]]) -> None:
    base, _, _ = server
    async with aiohttp.ClientSession() as s:
        await s.get(f"{base}/api/v1/crash")
        text = await (await s.get(f"{base}/metrics")).text()
    assert "secondnum_http_errors_total" in text


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        ({}, b"{}", 401),
        ({"Authorization": "Bearer wrong"}, b"{}", 401),
        ({"Authorization": "Basic s3cret"}, b"{}", 401),
        (AUTH, b"{not json", 400),
        (AUTH, b'{"fail": 1}', 422),
        (AUTH, b'{"ok": 1}', 200),
    ],
)
async def test_api_errors_are_problem_json(
    server: tuple[str, web.Application, dict[str, bool]], headers: dict[str, str], body: bytes, status: int
) -> None:
    base, _, _ = server
    async with aiohttp.ClientSession() as s:
        r = await s.post(f"{base}/api/v1/echo", data=body, headers=headers)
        assert r.status == status
        if status >= 400:
            assert r.content_type == "application/problem+json"
            assert (await r.json())["status"] == status


async def test_unhandled_error_leaks_no_traceback(
    server: tuple[str, web.Application, dict[str, bool]],
) -> None:
    base, _, _ = server
    async with aiohttp.ClientSession() as s:
        r = await s.get(f"{base}/api/v1/crash", headers=AUTH)
        text = await r.text()
    assert r.status == 500
    assert "secret internals" not in text and "Traceback" not in text and "reference" in text


async def test_unknown_route_is_problem_404(server: tuple[str, web.Application, dict[str, bool]]) -> None:
    base, _, _ = server
    async with aiohttp.ClientSession() as s:
        r = await s.get(f"{base}/nowhere")
        assert r.status == 404 and r.content_type == "application/problem+json"
    await asyncio.sleep(0)


class _Leaky:
    """A type only this test creates, so its count in the census is ours to predict."""


async def test_debug_objects_counts_live_objects_behind_the_token(
        server: tuple[str, web.Application, dict[str, bool]]) -> None:
    base, _, _ = server
    url = f"{base}/api/v1/debug/objects?top=500"
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as resp:
            assert resp.status == 401  # like the rest of /api/
        auth = {"Authorization": "Bearer s3cret"}
        kept = [_Leaky() for _ in range(5000)]
        async with http.get(url, headers=auth) as resp:
            assert resp.status == 200
            census = await resp.json()
        counts = {t["type"]: t["count"] for t in census["types"]}
        assert counts.get(f"{__name__}._Leaky") == 5000
        assert census["tracked_objects"] >= 5000 and census["python_allocated_blocks"] > 5000
        del kept
        async with http.get(url, headers=auth) as resp:
            census = await resp.json()
        assert f"{__name__}._Leaky" not in {t["type"] for t in census["types"]}
        for bad in ("x", "0", "501"):
            async with http.get(f"{base}/api/v1/debug/objects?top={bad}", headers=auth) as resp:
                assert resp.status == 400 and "integer from 1 to 500" in (await resp.json())["detail"]
        assert "mappings" not in census
        async with http.get(f"{url}&mappings=2", headers=auth) as resp:
            assert resp.status == 200
            maps = (await resp.json())["mappings"]
        assert 1 <= len(maps) <= 2 and maps[0]["objects"] > 0 and maps[0]["resident_bytes"] >= 1 << 20
        for bad in ("-1", "51", "x"):
            async with http.get(f"{url}&mappings={bad}", headers=auth) as resp:
                assert resp.status == 400 and "mappings must be an integer from 0 to 50" in (
                    await resp.json())["detail"]
