"""Handlers of ``/api/v1``: accounts, aliases, follow-me, voicemail.

Database work runs in a thread (``asyncio.to_thread``) so a slow query never stalls SIP handling that shares
the event loop in ``secondnum up``. Store errors map to RFC 9457 problems: unknown 404, duplicate 409,
invalid 422 (``field`` names the member).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import quote

from aiohttp import web
from pymongo.errors import PyMongoError

from hss_adapter import store
from hss_adapter.api.representation import (
    account_json,
    follow_me_json,
    merge_patch,
    settings_json,
    voicemail_json,
)
from hss_adapter.api.schemas import SCHEMAS, validate
from hss_adapter.profile import AccountProfile
from secondnum.http import ProblemError, read_json
from secondnum.identity import IdentityError, normalise_e164
from secondnum.log import get_logger

log = get_logger(__name__)

T = TypeVar("T")
OnChange = Callable[[str], Awaitable[None]]

ON_CHANGE_KEY: web.AppKey[list[OnChange]] = web.AppKey("hss_on_change", list)
MAX_PAGE_KEY: web.AppKey[int] = web.AppKey("hss_max_page", int)

PREFIX = "/api/v1"
routes = web.RouteTableDef()


async def _db(fn: Callable[..., T], *args: Any) -> T:
    try:
        return await asyncio.to_thread(fn, *args)
    except store.NotFoundError as exc:
        raise ProblemError(404, "Not Found", str(exc), field=exc.field) from None
    except store.DuplicateError as exc:
        raise ProblemError(409, "Conflict", str(exc), field=exc.field) from None
    except store.InvalidError as exc:
        raise ProblemError(422, "Unprocessable Content", str(exc), field=exc.field) from None
    except PyMongoError as exc:
        # Database unreachable or failing: a retryable condition, not a server bug (RFC 9110 §15.6.4).
        log.warning("provisioning_db_error", error=str(exc)[:200])
        raise ProblemError(503, "Service Unavailable", "the subscriber database is not available") from None


def _did(request: web.Request) -> str:
    try:
        return normalise_e164(request.match_info["did"])
    except IdentityError:
        raise ProblemError(422, "Unprocessable Content", "'did' is not an E.164 number",
                           field="did") from None


async def _changed(request: web.Request, did: str) -> None:
    for callback in request.app[ON_CHANGE_KEY]:
        await callback(did)


async def _profile(did: str) -> AccountProfile:
    return await _db(store.require_profile, did)


# --- accounts -----------------------------------------------------------------------------------------------

@routes.post(f"{PREFIX}/accounts")
async def create_account(request: web.Request) -> web.Response:
    body = validate("AccountCreate", await read_json(request))
    profile = await _db(store.create_account, body)
    await _changed(request, profile.did)
    resp = web.json_response(account_json(profile), status=201)
    resp.headers["Location"] = f"{PREFIX}/accounts/{profile.did}"
    return resp


def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise ProblemError(422, "Unprocessable Content", f"'{name}' must be an integer in {low}..{high}",
                           field=name)
    return value


@routes.get(f"{PREFIX}/accounts")
async def list_accounts(request: web.Request) -> web.Response:
    limit = _int_param(request, "limit", 50, 1, request.app[MAX_PAGE_KEY])
    offset = _int_param(request, "offset", 0, 0, 10**9)
    filters: dict[str, str] = {}
    for name in ("status", "answering_mode"):
        if name in request.query:
            value = request.query[name]
            if value not in SCHEMAS["AccountSettings"]["properties"][name]["enum"]:
                raise ProblemError(422, "Unprocessable Content", f"unknown {name} {value!r}", field=name)
            filters[name] = value
    after = None
    if "after" in request.query:
        try:
            after = normalise_e164(request.query["after"])
        except IdentityError:
            raise ProblemError(422, "Unprocessable Content", "'after' is not an E.164 number",
                               field="after") from None
    unknown = sorted(set(request.query) - {"limit", "offset", "after", "status", "answering_mode"})
    if unknown:
        raise ProblemError(422, "Unprocessable Content", f"unknown query parameter '{unknown[0]}'",
                           field=unknown[0])
    items, total = await _db(store.list_profiles, limit, offset, filters, after)
    next_after = items[-1].did if len(items) == limit else None
    return web.json_response({"items": [account_json(p) for p in items], "total": total, "limit": limit,
                              "offset": offset, "next_after": next_after})


@routes.get(f"{PREFIX}/accounts/{{did}}")
async def get_account(request: web.Request) -> web.Response:
    return web.json_response(account_json(await _profile(_did(request))))


@routes.put(f"{PREFIX}/accounts/{{did}}")
async def put_account(request: web.Request) -> web.Response:
    did = _did(request)
    body = validate("AccountSettings", await read_json(request))
    profile = await _db(store.replace_account, did, body)
    await _changed(request, did)
    return web.json_response(account_json(profile))


@routes.patch(f"{PREFIX}/accounts/{{did}}")
async def patch_account(request: web.Request) -> web.Response:
    did = _did(request)
    patch = await read_json(request)
    if not isinstance(patch, dict):
        raise ProblemError(422, "Unprocessable Content", "a merge patch must be a JSON object", field="body")
    current = await _profile(did)
    merged = validate("AccountSettings", merge_patch(settings_json(current), patch))
    profile = await _db(store.replace_account, did, merged)
    await _changed(request, did)
    return web.json_response(account_json(profile))


@routes.delete(f"{PREFIX}/accounts/{{did}}")
async def delete_account(request: web.Request) -> web.Response:
    did = _did(request)
    if not await _db(store.delete_account, did):
        raise ProblemError(404, "Not Found", f"no account {did}", field="did")
    return web.Response(status=204)


# --- aliases ------------------------------------------------------------------------------------------------

def _aliases_json(profile: AccountProfile) -> list[dict[str, Any]]:
    return list(account_json(profile)["aliases"])


@routes.get(f"{PREFIX}/accounts/{{did}}/aliases")
async def list_aliases(request: web.Request) -> web.Response:
    return web.json_response(_aliases_json(await _profile(_did(request))))


@routes.post(f"{PREFIX}/accounts/{{did}}/aliases")
async def add_alias(request: web.Request) -> web.Response:
    did = _did(request)
    body = validate("AliasInput", await read_json(request))
    profile = await _db(store.add_alias, did, body["identity"], body.get("allow_registration", False))
    await _changed(request, did)
    key = store.canonical_identity(body["identity"])
    alias = next(a for a in _aliases_json(profile) if a["key"] == key)
    resp = web.json_response(alias, status=201)
    resp.headers["Location"] = f"{PREFIX}/accounts/{did}/aliases/{quote(key, safe=':@+')}"
    return resp


def _alias_key(request: web.Request) -> str:
    try:
        return store.canonical_identity(request.match_info["identity"])
    except store.InvalidError as exc:
        raise ProblemError(422, "Unprocessable Content", str(exc), field="identity") from None


@routes.get(f"{PREFIX}/accounts/{{did}}/aliases/{{identity}}")
async def get_alias(request: web.Request) -> web.Response:
    did, key = _did(request), _alias_key(request)
    for alias in _aliases_json(await _profile(did)):
        if alias["key"] == key:
            return web.json_response(alias)
    raise ProblemError(404, "Not Found", f"{request.match_info['identity']} is not an alias of {did}",
                       field="identity")


@routes.delete(f"{PREFIX}/accounts/{{did}}/aliases/{{identity}}")
async def delete_alias(request: web.Request) -> web.Response:
    did = _did(request)
    _alias_key(request)
    await _db(store.remove_alias, did, request.match_info["identity"])
    await _changed(request, did)
    return web.Response(status=204)


# --- follow-me and voicemail sub-resources ------------------------------------------------------------------

async def _update_section(request: web.Request, section: str, schema: str, merge: bool) -> AccountProfile:
    did = _did(request)
    body = await read_json(request)
    current = await _profile(did)
    settings = settings_json(current)
    if merge:
        if not isinstance(body, dict):
            raise ProblemError(422, "Unprocessable Content", "a merge patch must be a JSON object",
                               field="body")
        body = merge_patch(settings[section], body)
    settings[section] = validate(schema, body)
    try:
        profile = await _db(store.replace_account, did, settings)
    except ProblemError as exc:
        # Name the member as it appears in this sub-resource's body, like schema violations do.
        field = exc.extra.get("field", "")
        if isinstance(field, str) and field.startswith(f"{section}."):
            exc.extra["field"] = field.removeprefix(f"{section}.")
        raise
    await _changed(request, did)
    return profile


@routes.get(f"{PREFIX}/accounts/{{did}}/follow-me")
async def get_follow_me(request: web.Request) -> web.Response:
    return web.json_response(follow_me_json((await _profile(_did(request))).follow_me))


@routes.put(f"{PREFIX}/accounts/{{did}}/follow-me")
async def put_follow_me(request: web.Request) -> web.Response:
    profile = await _update_section(request, "follow_me", "FollowMe", merge=False)
    return web.json_response(follow_me_json(profile.follow_me))


@routes.patch(f"{PREFIX}/accounts/{{did}}/follow-me")
async def patch_follow_me(request: web.Request) -> web.Response:
    profile = await _update_section(request, "follow_me", "FollowMe", merge=True)
    return web.json_response(follow_me_json(profile.follow_me))


@routes.get(f"{PREFIX}/accounts/{{did}}/voicemail")
async def get_voicemail(request: web.Request) -> web.Response:
    return web.json_response(voicemail_json((await _profile(_did(request))).voicemail))


@routes.put(f"{PREFIX}/accounts/{{did}}/voicemail")
async def put_voicemail(request: web.Request) -> web.Response:
    profile = await _update_section(request, "voicemail", "VoicemailInput", merge=False)
    return web.json_response(voicemail_json(profile.voicemail))


@routes.patch(f"{PREFIX}/accounts/{{did}}/voicemail")
async def patch_voicemail(request: web.Request) -> web.Response:
    profile = await _update_section(request, "voicemail", "VoicemailInput", merge=True)
    return web.json_response(voicemail_json(profile.voicemail))
