"""The voicemail REST API over HTTP (aiohttp server on an ephemeral port, real store)."""

from __future__ import annotations

import datetime as dt

import aiohttp
import pytest

from hss_adapter.store import create_account
from media.audio import g711, tones, wav
from media.service import MediaService
from media.store.models import VoicemailBox
from media.store.voicemail import VoicemailStore

MB = "42027777100"


@pytest.fixture
def base(media: MediaService) -> str:
    return f"http://127.0.0.1:{media.api_port}/api/mailboxes"


async def test_list_download_save_delete(media: MediaService, base: str) -> None:
    store = VoicemailStore()
    ulaw = g711.encode(tones.tone((500.0,), 1000), "PCMU")
    info = store.add_message(MB, "42075553333", ulaw, dt.datetime(2026, 11, 25, 8, 0, tzinfo=dt.UTC))
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/+{MB}/messages") as r:
            body = await r.json()
            assert r.status == 200 and body["messages"][0]["id"] == info.id
            assert body["messages"][0]["received_at"] == "2026-11-25T08:00:00Z"
        async with http.get(f"{base}/{MB}/messages/{info.id}/audio") as r:
            assert r.status == 200 and r.content_type == "audio/wav"
            assert g711.encode(wav.read_wav(await r.read()), "PCMU") == ulaw
        async with http.patch(f"{base}/{MB}/messages/{info.id}", json={"state": "saved"}) as r:
            assert r.status == 200 and (await r.json())["state"] == "saved"
        async with http.get(f"{base}/{MB}/messages?state=new") as r:
            assert (await r.json())["messages"] == []
        async with http.delete(f"{base}/{MB}/messages/{info.id}") as r:
            assert r.status == 204
        async with http.delete(f"{base}/{MB}/messages/{info.id}") as r:
            assert r.status == 404
            assert r.content_type == "application/problem+json"


@pytest.mark.parametrize(("method", "path", "kwargs", "status"), [
    ("get", "/notanumber/messages", {}, 400),
    ("get", f"/{MB}/messages?state=old", {}, 400),
    ("patch", f"/{MB}/messages/0123456789abcdef01234567", {"json": {"state": "saved"}}, 404),
    ("patch", f"/{MB}/messages/x", {"json": {"state": "gone"}}, 400),
    ("patch", f"/{MB}/messages/x", {"data": b"{not json"}, 400),
    ("put", f"/{MB}/greeting", {"data": b"RIFFnope"}, 415),
    ("patch", f"/{MB}", {"json": {"pin": "1234"}}, 400),
    ("patch", f"/{MB}", {"json": {"colour": "red"}}, 400),
    ("patch", f"/{MB}", {"json": {"max_messages": True}}, 400),
])
async def test_bad_requests(media: MediaService, base: str, method: str, path: str,
                            kwargs: dict[str, object], status: int) -> None:
    async with aiohttp.ClientSession() as http, http.request(method, base + path, **kwargs) as r:  # type: ignore[arg-type]
        assert r.status == status
        assert r.content_type == "application/problem+json"


async def test_greeting_upload_and_mailbox_settings(media: MediaService, base: str) -> None:
    greeting = wav.pcm_wav(tones.tone((600.0,), 1500))
    async with aiohttp.ClientSession() as http:
        async with http.put(f"{base}/{MB}/greeting", data=greeting) as r:
            assert r.status == 201 and (await r.json())["duration_ms"] == 1500
        async with http.patch(f"{base}/{MB}", json={"require_pin": True}) as r:
            body = await r.json()
            assert not body["pin_set"] and body["require_pin"] and body["custom_greeting"]
        async with http.delete(f"{base}/{MB}/greeting") as r:
            assert r.status == 204
        async with http.get(f"{base}/{MB}") as r:
            assert (await r.json())["custom_greeting"] is False


async def test_pin_is_account_data(media: MediaService, base: str) -> None:
    """The PIN is set through the provisioning API only; media shows whether the account has one."""
    async with aiohttp.ClientSession() as http:
        async with http.patch(f"{base}/{MB}", json={"pin": "2468"}) as r:
            assert r.status == 400 and r.content_type == "application/problem+json"
            assert "/api/v1/accounts/{did}/voicemail" in (await r.json())["detail"]
        create_account({"did": MB, "voicemail": {"pin": "2468", "pin_required": True, "max_messages": 7}})
        async with http.get(f"{base}/{MB}") as r:
            body = await r.json()
            assert body["pin_set"] and body["account_pin_required"] and body["max_messages"] == 7
    assert "pin_hash" not in VoicemailBox._get_collection().find_one({"mailbox": MB})
