"""The voicemail REST API (routes in ``media/README.md``), on the shared aiohttp base app."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from media.audio import g711
from media.audio.wav import WavError, read_wav
from media.store.account import account_voicemail
from media.store.voicemail import NotFoundError, VoicemailStore
from secondnum.http import ProblemError, make_app, read_json
from secondnum.identity import IdentityError, normalise_e164

STORE_KEY: web.AppKey[VoicemailStore] = web.AppKey("voicemail_store", VoicemailStore)
MAX_GREETING_BYTES = 10 * 1024 * 1024


def _mailbox(request: web.Request) -> str:
    try:
        return normalise_e164(request.match_info["did"])
    except IdentityError:
        raise ProblemError(400, "Bad Request", "mailbox must be an E.164 number") from None


async def _call(fn: Any, *args: Any) -> Any:
    try:
        return await asyncio.to_thread(fn, *args)
    except NotFoundError:
        raise ProblemError(404, "Not Found", "no such message") from None


async def list_messages(request: web.Request) -> web.Response:
    state = request.query.get("state")
    if state not in (None, "new", "saved"):
        raise ProblemError(400, "Bad Request", "state must be 'new' or 'saved'")
    store = request.app[STORE_KEY]
    messages = await _call(store.list_messages, _mailbox(request), state)
    return web.json_response({"messages": [m.as_json() for m in messages]})


async def message_audio(request: web.Request) -> web.Response:
    store = request.app[STORE_KEY]
    data = await _call(store.audio_wav, _mailbox(request), request.match_info["id"])
    return web.Response(body=data, content_type="audio/wav")


async def patch_message(request: web.Request) -> web.Response:
    body = await read_json(request)
    if not isinstance(body, dict) or body.get("state") not in ("new", "saved") or len(body) != 1:
        raise ProblemError(400, "Bad Request", 'body must be {"state": "new" | "saved"}')
    store = request.app[STORE_KEY]
    info = await _call(store.set_state, _mailbox(request), request.match_info["id"], body["state"])
    return web.json_response(info.as_json())


async def delete_message(request: web.Request) -> web.Response:
    store = request.app[STORE_KEY]
    await _call(store.delete, _mailbox(request), request.match_info["id"])
    return web.Response(status=204)


async def put_greeting(request: web.Request) -> web.Response:
    data = await request.read()
    try:
        pcm = read_wav(data)
    except WavError as exc:
        raise ProblemError(415, "Unsupported Media Type", f"greeting must be a WAV file: {exc}") from None
    if not pcm:
        raise ProblemError(400, "Bad Request", "greeting is empty")
    store = request.app[STORE_KEY]
    ulaw = g711.encode(pcm, "PCMU")
    await _call(store.set_greeting, _mailbox(request), ulaw)
    return web.json_response({"duration_ms": len(ulaw) // 8}, status=201)


async def delete_greeting(request: web.Request) -> web.Response:
    store = request.app[STORE_KEY]
    await _call(store.set_greeting, _mailbox(request), None)
    return web.Response(status=204)


def _box_json(store: VoicemailStore, mailbox: str) -> dict[str, object]:
    box = store.box(mailbox)
    new, saved = store.counts(mailbox)
    account = account_voicemail(mailbox)  # the PIN is account data: shown, never set, here
    return {"mailbox": mailbox, "require_pin": bool(box.require_pin),
            "pin_set": bool(account is not None and account.pin_hash),
            "account_pin_required": bool(account is not None and account.pin_required),
            "locked": bool(box.locked),
            "max_messages": store.capacity(box, account.max_messages if account is not None else None),
            "new": new, "saved": saved, "custom_greeting": box.greeting_audio_id is not None}


async def get_box(request: web.Request) -> web.Response:
    store = request.app[STORE_KEY]
    return web.json_response(await _call(_box_json, store, _mailbox(request)))


_BOX_FIELDS = {"require_pin": bool, "locked": bool, "max_messages": int}
PIN_MOVED = ("the voicemail PIN is account data: set it with PATCH /api/v1/accounts/{did}/voicemail "
             '{"pin": "1234"} on the provisioning API')


async def patch_box(request: web.Request) -> web.Response:
    body = await read_json(request)
    if not isinstance(body, dict) or not body:
        raise ProblemError(400, "Bad Request", "body must be a JSON object")
    for key, value in body.items():
        if key == "pin":
            raise ProblemError(400, "Bad Request", PIN_MOVED)
        kind = _BOX_FIELDS.get(key)
        if kind is None:
            raise ProblemError(400, "Bad Request", f"unknown field {key!r}")
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ProblemError(400, "Bad Request", f"{key} must be {kind.__name__}")
    if "max_messages" in body and not 1 <= body["max_messages"] <= 10000:
        raise ProblemError(400, "Bad Request", "max_messages must be 1..10000")
    store = request.app[STORE_KEY]
    mailbox = _mailbox(request)
    await _call(lambda: store.update_box(mailbox, **body))
    return web.json_response(await _call(_box_json, store, mailbox))


def build_app(store: VoicemailStore, tokens: list[str]) -> web.Application:
    app = make_app("media", tokens=tokens, client_max_size=MAX_GREETING_BYTES)
    app[STORE_KEY] = store
    base = "/api/mailboxes/{did}"
    app.router.add_get(base, get_box)
    app.router.add_patch(base, patch_box)
    app.router.add_get(base + "/messages", list_messages)
    app.router.add_get(base + "/messages/{id}/audio", message_audio)
    app.router.add_patch(base + "/messages/{id}", patch_message)
    app.router.add_delete(base + "/messages/{id}", delete_message)
    app.router.add_put(base + "/greeting", put_greeting)
    app.router.add_delete(base + "/greeting", delete_greeting)
    return app
