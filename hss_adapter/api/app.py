"""Assembly of the provisioning API application on top of :func:`secondnum.http.make_app`."""

from __future__ import annotations

from aiohttp import web

from hss_adapter.api.openapi import serve_openapi
from hss_adapter.api.routes import MAX_PAGE_KEY, ON_CHANGE_KEY, PREFIX, OnChange, routes
from hss_adapter.settings import ApiSettings
from secondnum.http import make_app
from secondnum.mongo import ping


async def _mongo_ready() -> bool:
    return await ping()


def build_app(settings: ApiSettings, on_change: list[OnChange] | None = None) -> web.Application:
    """The ``hss`` component's HTTP app: health, metrics, auth and problem+json from secondnum.http."""
    app = make_app("hss", tokens=settings.tokens, readiness={"mongo": _mongo_ready})
    app[ON_CHANGE_KEY] = list(on_change or [])
    app[MAX_PAGE_KEY] = settings.max_page
    app.router.add_routes(routes)
    app.router.add_get(f"{PREFIX}/openapi.json", serve_openapi)
    return app
