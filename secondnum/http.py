"""The aiohttp base every component's HTTP surface is built on.

Each component gets the same operational endpoints and the same error contract:

- ``GET /health/live``: the event loop answers (Kubernetes liveness).
- ``GET /health/ready``: every registered readiness check passes and the component is not draining
  (Kubernetes readiness); the body lists each check.
- ``GET /metrics``: Prometheus text exposition of the process registry.
- Errors are ``application/problem+json`` (RFC 9457); an unexpected exception is logged with a reference id
  and answered 500 without a stack trace.
- ``/api/...`` requires ``Authorization: Bearer <token>`` when tokens are configured (RFC 6750 §2.1).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest

from secondnum import memory
from secondnum.log import get_logger

log = get_logger(__name__)

ReadinessCheck = Callable[[], Awaitable[bool]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

HTTP_ERRORS = Counter("secondnum_http_errors_total", "HTTP error responses", ["component", "status"])

PROBLEM_CONTENT_TYPE = "application/problem+json"

CHECKS_KEY: web.AppKey[dict[str, ReadinessCheck]] = web.AppKey("readiness_checks", dict)
DRAINING_KEY: web.AppKey[asyncio.Event] = web.AppKey("draining", asyncio.Event)
COMPONENT_KEY: web.AppKey[str] = web.AppKey("component", str)


def problem(status: int, title: str, detail: str | None = None, **extra: Any) -> web.Response:
    """An RFC 9457 problem details response."""
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    return web.Response(status=status, text=json.dumps(body), content_type=PROBLEM_CONTENT_TYPE)


class ProblemError(Exception):
    """Raise from a handler to answer with a problem document (status, title, detail, extra members)."""

    def __init__(self, status: int, title: str, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail or title)
        self.status, self.title, self.detail, self.extra = status, title, detail, extra

    def response(self) -> web.Response:
        return problem(self.status, self.title, self.detail, **self.extra)


async def read_json(request: web.Request) -> Any:
    """The request body as JSON, or a 400 problem naming the parse error."""
    try:
        return await request.json(loads=json.loads)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProblemError(400, "Bad Request", f"body is not valid JSON: {exc}") from None


def _error_middleware(component: str) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except ProblemError as exc:
            response = exc.response()
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            response = problem(exc.status, exc.reason, exc.text if exc.text != exc.reason else None)
        except asyncio.CancelledError:
            raise
        except Exception:
            ref = uuid.uuid4().hex[:12]
            log.exception("http_unhandled_error", component=component, path=request.path, ref=ref)
            response = problem(500, "Internal Server Error", f"reference {ref}")
        if response.status >= 400:
            HTTP_ERRORS.labels(component, str(response.status)).inc()
        return response

    return middleware


def _auth_middleware(tokens: Iterable[str], protected_prefix: str) -> Any:
    valid = [t.encode() for t in tokens if t]

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if valid and request.path.startswith(protected_prefix):
            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            ok = scheme.lower() == "bearer" and any(
                hmac.compare_digest(token.strip().encode(), t) for t in valid
            )
            if not ok:
                resp = problem(401, "Unauthorized", "a valid bearer token is required")
                resp.headers["WWW-Authenticate"] = 'Bearer realm="secondnum"'
                return resp
        return await handler(request)

    return middleware


async def _live(request: web.Request) -> web.Response:
    return web.json_response({"status": "live"})


async def _ready(request: web.Request) -> web.Response:
    app = request.app
    results: dict[str, bool] = {}
    for name, check in app[CHECKS_KEY].items():
        try:
            results[name] = bool(await asyncio.wait_for(check(), 2.0))
        except Exception:
            results[name] = False
    draining = app[DRAINING_KEY].is_set()
    ready = all(results.values()) and not draining
    body = {"status": "ready" if ready else "not ready", "checks": results, "draining": draining}
    return web.json_response(body, status=200 if ready else 503)


async def _metrics(request: web.Request) -> web.Response:
    resp = web.Response(body=generate_latest())
    resp.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    return resp


async def _objects(request: web.Request) -> web.Response:
    """``GET /api/v1/debug/objects?top=N[&mappings=M]``: live objects by type (behind the API token like all
    of /api/). Compare two readings to tell a leak from memory the allocator merely keeps; ``mappings``
    adds the M most resident anonymous mappings with the objects in each, which names what keeps memory
    that live counts say is free (secondnum/memory.py)."""
    top = _bounded_int(request, "top", 30, 1, 500)
    mappings = _bounded_int(request, "mappings", 0, 0, 50)
    census = memory.object_census(top)
    if mappings:
        census["mappings"] = memory.mapping_census(top)[:mappings]
    return web.json_response(census)


def _bounded_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    try:
        value = int(request.query.get(name, str(default)))
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise ProblemError(400, "Bad Request", f"{name} must be an integer from {low} to {high}")
    return value


def make_app(
    component: str,
    *,
    tokens: Iterable[str] = (),
    readiness: dict[str, ReadinessCheck] | None = None,
    protected_prefix: str = "/api/",
    client_max_size: int = 1024 * 1024,
) -> web.Application:
    """Create a component's aiohttp application with health, metrics, errors and auth in place."""
    app = web.Application(
        middlewares=[_error_middleware(component), _auth_middleware(tokens, protected_prefix)],
        client_max_size=client_max_size,
    )
    app[COMPONENT_KEY] = component
    app[CHECKS_KEY] = dict(readiness or {})
    app[DRAINING_KEY] = asyncio.Event()
    app.router.add_get("/health/live", _live)
    app.router.add_get("/health/ready", _ready)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/api/v1/debug/objects", _objects)
    return app


def add_readiness(app: web.Application, name: str, check: ReadinessCheck) -> None:
    app[CHECKS_KEY][name] = check


def set_draining(app: web.Application) -> None:
    """Mark the component as draining: /health/ready answers 503 from now on."""
    app[DRAINING_KEY].set()


async def serve(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Start ``app`` on ``host:port``; the caller keeps the runner and calls ``cleanup()`` to stop."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    return runner


def bound_port(runner: web.AppRunner) -> int:
    """The port the runner actually listens on (useful with port 0 in tests)."""
    for site in runner.sites:
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            return int(server.sockets[0].getsockname()[1])
    raise RuntimeError("runner has no listening socket")
