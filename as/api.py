"""REST listing of CDRs: ``GET /api/v1/cdrs`` and ``GET /api/v1/cdrs/{id}`` (bearer auth, RFC 6750).

Filters are exact matches (``did``, ``disposition``, ``flow``, ``icid``) and a ``since``/``until`` range
on the setup time (RFC 3339); pagination with ``limit`` (1..500, default 50) and ``offset``. Newest first.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from aiohttp import web
from bson import ObjectId
from bson.errors import InvalidId

from appserver.cdr import Cdr, Disposition, Flow
from secondnum.http import ProblemError

MAX_LIMIT = 500


def _time(name: str, value: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ProblemError(400, "Bad Request", f"{name} is not an RFC 3339 timestamp", field=name) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _int(name: str, value: str, low: int, high: int) -> int:
    if not value.isdigit() or not low <= int(value) <= high:
        raise ProblemError(400, "Bad Request", f"{name} must be an integer in {low}..{high}", field=name)
    return int(value)


def query_filters(params: Any) -> tuple[dict[str, Any], int, int]:
    """Validated mongoengine filters, limit, offset from the query string."""
    filters: dict[str, Any] = {}
    for name in ("did", "icid"):
        if name in params:
            filters[name] = params[name]
    if "disposition" in params:
        if params["disposition"] not in {d.value for d in Disposition}:
            raise ProblemError(400, "Bad Request", "unknown disposition", field="disposition")
        filters["disposition"] = params["disposition"]
    if "flow" in params:
        if params["flow"] not in {f.value for f in Flow}:
            raise ProblemError(400, "Bad Request", "unknown flow", field="flow")
        filters["flow"] = params["flow"]
    if "since" in params:
        filters["setup_at__gte"] = _time("since", params["since"])
    if "until" in params:
        filters["setup_at__lt"] = _time("until", params["until"])
    limit = _int("limit", params.get("limit", "50"), 1, MAX_LIMIT)
    offset = _int("offset", params.get("offset", "0"), 0, 10_000_000)
    return filters, limit, offset


async def list_cdrs(request: web.Request) -> web.Response:
    filters, limit, offset = query_filters(request.query)

    def query() -> tuple[int, list[dict[str, Any]]]:
        qs = Cdr.objects(**filters).order_by("-setup_at")
        return qs.count(), [doc.to_json() for doc in qs.skip(offset).limit(limit)]

    total, items = await asyncio.to_thread(query)
    return web.json_response({"total": total, "limit": limit, "offset": offset, "items": items})


async def get_cdr(request: web.Request) -> web.Response:
    try:
        oid = ObjectId(request.match_info["id"])
    except (InvalidId, TypeError):
        raise ProblemError(404, "Not Found", "no such CDR") from None
    doc = await asyncio.to_thread(lambda: Cdr.objects(pk=oid).first())
    if doc is None:
        raise ProblemError(404, "Not Found", "no such CDR")
    return web.json_response(doc.to_json())


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/cdrs", list_cdrs)
    app.router.add_get("/api/v1/cdrs/{id}", get_cdr)
