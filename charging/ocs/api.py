"""REST API of the built-in OCS (aiohttp, on `secondnum.http.make_app`: auth, problem+json).

Amounts are decimal strings in the account currency ("10.00"); stored as integer milli-units.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from aiohttp import web

from charging.ocs import models
from secondnum.http import ProblemError, read_json

if TYPE_CHECKING:
    from charging.ocs.server import OcsServer

OCS_KEY: web.AppKey[OcsServer] = web.AppKey("ocs")
routes = web.RouteTableDef()
_MILLI = Decimal(1000)
_MAX_AMOUNT = Decimal(1_000_000)


def money(milli: int) -> str:
    return str((Decimal(milli) / _MILLI).quantize(Decimal("0.001")))


def parse_money(value: Any, name: str) -> int:
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ProblemError(400, "Invalid amount", f"{name} must be a decimal string") from None
    if not amount.is_finite() or amount < 0 or amount > _MAX_AMOUNT:
        raise ProblemError(400, "Invalid amount", f"{name} must be between 0 and {_MAX_AMOUNT}")
    return int((amount * _MILLI).to_integral_value())


def _e164(request: web.Request) -> str:
    e164 = request.match_info["e164"].lstrip("+")
    if not e164.isdigit() or not 3 <= len(e164) <= 15:
        raise ProblemError(400, "Invalid number", "E.164 digits expected")
    return e164


def _account_json(a: models.Account) -> dict[str, Any]:
    return {"e164": a.e164, "balance": money(a.balance), "reserved": money(a.reserved)}


@routes.get("/api/v1/accounts/{e164}")
async def get_account(request: web.Request) -> web.Response:
    e164 = _e164(request)
    a = await asyncio.to_thread(lambda: models.Account.objects(e164=e164).first())
    if a is None:
        raise ProblemError(404, "Unknown account", e164)
    return web.json_response(_account_json(a))


@routes.post("/api/v1/accounts/{e164}/topup")
async def topup(request: web.Request) -> web.Response:
    """Credit an account, creating it when new."""
    e164 = _e164(request)
    body = await read_json(request)
    if not isinstance(body, dict) or "amount" not in body:
        raise ProblemError(400, "Invalid body", 'expected {"amount": "10.00"}')
    amount = parse_money(body["amount"], "amount")

    def _do() -> models.Account:
        models.Account.objects(e164=e164).update_one(
            inc__balance=amount, set__updated_at=dt.datetime.now(dt.UTC), upsert=True
        )
        acc: models.Account = models.Account.objects.get(e164=e164)
        return acc

    return web.json_response(_account_json(await asyncio.to_thread(_do)))


@routes.get("/api/v1/accounts/{e164}/records")
async def records(request: web.Request) -> web.Response:
    e164 = _e164(request)

    def _do() -> list[dict[str, Any]]:
        return [
            {
                "session_id": r.session_id,
                "called": r.called,
                "prefix": r.prefix,
                "used_seconds": r.used_seconds,
                "charged": money(r.charged),
                "closed": r.closed,
                "started_at": r.started_at.isoformat(),
                "updated_at": r.updated_at.isoformat(),
            }
            for r in models.RatedRecord.objects(e164=e164).order_by("-updated_at").limit(500)
        ]

    return web.json_response({"records": await asyncio.to_thread(_do)})


def _tariff_json(t: models.Tariff) -> dict[str, Any]:
    return {
        "prefix": t.prefix,
        "price_per_minute": money(t.price_per_minute),
        "increment_seconds": t.increment_seconds,
        "connection_fee": money(t.connection_fee),
    }


@routes.get("/api/v1/tariffs")
async def list_tariffs(request: web.Request) -> web.Response:
    rows = await asyncio.to_thread(lambda: [_tariff_json(t) for t in models.Tariff.objects()])
    return web.json_response({"tariffs": rows})


@routes.put("/api/v1/tariffs/{prefix}")
async def put_tariff(request: web.Request) -> web.Response:
    """Create or replace the tariff of a prefix ("default" = the catch-all rule)."""
    prefix = request.match_info["prefix"]
    prefix = "" if prefix == "default" else prefix.lstrip("+")
    if prefix and not prefix.isdigit():
        raise ProblemError(400, "Invalid prefix", "digits or 'default'")
    body = await read_json(request)
    if not isinstance(body, dict):
        raise ProblemError(400, "Invalid body", "JSON object expected")
    inc = body.get("increment_seconds", 60)
    if not isinstance(inc, int) or isinstance(inc, bool) or not 1 <= inc <= 3600:
        raise ProblemError(400, "Invalid increment", "increment_seconds: integer 1..3600")
    t = models.Tariff(
        prefix=prefix,
        price_per_minute=parse_money(body.get("price_per_minute"), "price_per_minute"),
        increment_seconds=inc,
        connection_fee=parse_money(body.get("connection_fee", "0"), "connection_fee"),
    )
    await asyncio.to_thread(t.save)
    await request.app[OCS_KEY].reload_tariffs()
    return web.json_response(_tariff_json(t))


@routes.delete("/api/v1/tariffs/{prefix}")
async def delete_tariff(request: web.Request) -> web.Response:
    prefix = request.match_info["prefix"]
    prefix = "" if prefix == "default" else prefix.lstrip("+")
    n = await asyncio.to_thread(lambda: models.Tariff.objects(prefix=prefix).delete())
    if not n:
        raise ProblemError(404, "Unknown tariff", prefix or "default")
    await request.app[OCS_KEY].reload_tariffs()
    return web.Response(status=204)


def install(app: web.Application, ocs: OcsServer) -> None:
    app[OCS_KEY] = ocs
    app.add_routes(routes)
