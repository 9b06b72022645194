"""A small client for the provisioning API under test (shared by this folder's tests and conftest)."""

from __future__ import annotations

import aiohttp
from aiohttp import web

TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Api:
    """A small client for the provisioning API under test."""

    def __init__(self, base: str, session: aiohttp.ClientSession, app: web.Application) -> None:
        self.base, self.session, self.app = base, session, app

    async def call(
        self,
        method: str,
        path: str,
        json: object = None,
        *,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, object, str]:
        hdrs = {**AUTH, **(headers or {})}
        async with self.session.request(method, self.base + path, json=json, data=data, headers=hdrs) as r:
            text = await r.text()
            body = await r.json(content_type=None) if text else None
            return r.status, body, r.content_type
