"""The provisioning REST API over a real socket and SecantusDB: CRUD, errors as RFC 9457 problems."""

from __future__ import annotations

from typing import Any

import pytest
from hss_api import Api

from hss_adapter import store
from hss_adapter.models import AccountDoc, AliasDoc

PROBLEM = "application/problem+json"
DID = "42027777100"

SEED: dict[str, Any] = {
    "did": DID,
    "answering_mode": "forward_then_voicemail",
    "follow_me": {"targets": [{"uri": "tel:+42073723123", "ring_timeout": 20}]},
    "voicemail": {"enabled": True},
    "aliases": [{"identity": "42073723123@pstn", "allow_registration": False}],
}


async def test_create_read_account(api: Api) -> None:
    status, body, _ = await api.call("POST", "/api/v1/accounts", SEED)
    assert status == 201, body
    assert isinstance(body, dict)
    assert body["did"] == DID and body["aliases"] == [
        {"identity": "42073723123@pstn", "key": "42073723123", "allow_registration": False}
    ]
    assert body["follow_me"]["targets"] == [{"uri": "tel:+42073723123", "ring_timeout": 20}]
    assert body["voicemail"]["pin_set"] is False
    status, again, _ = await api.call("GET", f"/api/v1/accounts/{DID}")
    assert status == 200 and again == body
    # '+' and visual separators name the same DID
    status, _, _ = await api.call("GET", "/api/v1/accounts/+420-2777-7100")
    assert status == 200


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "field"),
    [
        ("POST", "/api/v1/accounts", {"did": "123"}, 422, "did"),
        ("POST", "/api/v1/accounts", {"did": DID, "nickname": "x"}, 422, "nickname"),
        (
            "POST",
            "/api/v1/accounts",
            {"did": "42000000001", "aliases": [{"identity": "nonsense"}]},
            422,
            "aliases[0].identity",
        ),
        (
            "POST",
            "/api/v1/accounts",
            {"did": "42000000001", "follow_me": {"targets": [{"uri": "sip:nouser"}]}},
            422,
            "follow_me.targets[0].uri",
        ),
        ("POST", "/api/v1/accounts", SEED, 409, "did"),
        (
            "POST",
            "/api/v1/accounts",
            {"did": "42000000002", "aliases": [{"identity": "tel:+42073723123"}]},
            409,
            "aliases",
        ),
        (
            "POST",
            f"/api/v1/accounts/{DID}/aliases",
            {"identity": "sip:+42073723123@ims.example.net;user=phone"},
            409,
            "identity",
        ),
        ("GET", "/api/v1/accounts/42000000009", None, 404, "did"),
        ("GET", "/api/v1/accounts/abc", None, 422, "did"),
        ("PUT", "/api/v1/accounts/42000000009", {}, 404, "did"),
        ("PATCH", f"/api/v1/accounts/{DID}", {"answering_mode": "maybe"}, 422, "answering_mode"),
        ("PATCH", f"/api/v1/accounts/{DID}", {"did": "42000000001"}, 422, "did"),
        (
            "PUT",
            f"/api/v1/accounts/{DID}/follow-me",
            {"targets": [{"uri": "tel:+42073723123", "x": 1}]},
            422,
            "targets[0].x",
        ),
        ("PATCH", f"/api/v1/accounts/{DID}/voicemail", {"pin": "12ab"}, 422, "pin"),
        ("GET", f"/api/v1/accounts/{DID}/aliases/42099999999@pstn", None, 404, "identity"),
        ("DELETE", f"/api/v1/accounts/{DID}/aliases/42099999999@pstn", None, 404, "identity"),
        ("GET", "/api/v1/accounts?limit=0", None, 422, "limit"),
        ("GET", "/api/v1/accounts?status=deleted", None, 422, "status"),
        ("GET", "/api/v1/accounts?colour=red", None, 422, "colour"),
        ("GET", "/api/v1/accounts?after=abc", None, 422, "after"),
        (
            "PATCH",
            f"/api/v1/accounts/{DID}/follow-me",
            {"time_window": {"start": "08:00", "end": "18:00", "timezone": "Mars/Olympus"}},
            422,
            "time_window.timezone",
        ),
    ],
)
async def test_errors_are_problems(
    api: Api, method: str, path: str, body: Any, status: int, field: str
) -> None:
    assert (await api.call("POST", "/api/v1/accounts", SEED))[0] == 201
    got, problem, ctype = await api.call(method, path, body)
    assert (got, ctype) == (status, PROBLEM), problem
    assert isinstance(problem, dict)
    assert problem["status"] == status and problem["field"] == field, problem


async def test_bad_json_is_400(api: Api) -> None:
    status, problem, ctype = await api.call(
        "POST", "/api/v1/accounts", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert (status, ctype) == (400, PROBLEM) and isinstance(problem, dict) and "JSON" in problem["detail"]


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic dGVzdA==", "Bearer"])
async def test_auth_required(api: Api, header: str | None) -> None:
    headers = {"Authorization": header} if header is not None else {"Authorization": ""}
    status, problem, ctype = await api.call("GET", "/api/v1/accounts", headers=headers)
    assert (status, ctype) == (401, PROBLEM), problem
    # health stays open for Kubernetes probes
    async with api.session.get(api.base + "/health/live") as r:
        assert r.status == 200


async def test_put_patch_and_sub_resources(api: Api) -> None:
    await api.call("POST", "/api/v1/accounts", SEED)
    status, body, _ = await api.call(
        "PATCH",
        f"/api/v1/accounts/{DID}",
        {"display_name": "John", "follow_me": {"ring_order": "simultaneous"}},
    )
    assert status == 200 and isinstance(body, dict)
    assert body["display_name"] == "John"
    assert body["follow_me"]["ring_order"] == "simultaneous"
    assert body["follow_me"]["targets"] == SEED["follow_me"]["targets"]  # merge kept the targets
    status, fm, _ = await api.call(
        "PUT",
        f"/api/v1/accounts/{DID}/follow-me",
        {
            "targets": [{"uri": "+420 737 231 23"}, {"uri": "sip:john@example.net", "ring_timeout": 30}],
            "time_window": {
                "days": ["mon", "tue"],
                "start": "08:00",
                "end": "18:00",
                "timezone": "Europe/Prague",
            },
        },
    )
    assert status == 200 and isinstance(fm, dict)
    assert fm["targets"] == [
        {"uri": "tel:+42073723123", "ring_timeout": 20},
        {"uri": "sip:john@example.net", "ring_timeout": 30},
    ]
    assert fm["ring_order"] == "sequential"  # PUT replaces: default again
    status, fm2, _ = await api.call("PATCH", f"/api/v1/accounts/{DID}/follow-me", {"time_window": None})
    assert status == 200 and isinstance(fm2, dict) and fm2["time_window"] is None
    status, full, _ = await api.call("PUT", f"/api/v1/accounts/{DID}", {"answering_mode": "voicemail_only"})
    assert status == 200 and isinstance(full, dict)
    assert full["answering_mode"] == "voicemail_only" and full["display_name"] == ""
    assert full["aliases"][0]["key"] == "42073723123"  # PUT does not touch aliases


async def test_voicemail_pin_is_only_stored_hashed(api: Api) -> None:
    await api.call("POST", "/api/v1/accounts", SEED)
    status, vm, _ = await api.call(
        "PATCH", f"/api/v1/accounts/{DID}/voicemail", {"pin": "4321", "pin_required": True}
    )
    assert status == 200 and isinstance(vm, dict)
    assert vm["pin_set"] is True and vm["pin_required"] is True and "pin" not in vm
    raw = AccountDoc._get_collection().find_one({"did": DID})
    assert "4321" not in str(raw) and raw["voicemail"]["pin_hash"].startswith("scrypt$")
    profile = store.profile_of(DID)
    assert (
        profile is not None
        and profile.voicemail.verify_pin("4321")
        and not profile.voicemail.verify_pin("1234")
    )
    # other changes keep the PIN; null clears it
    await api.call("PATCH", f"/api/v1/accounts/{DID}/voicemail", {"max_messages": 10})
    assert store.profile_of(DID).voicemail.verify_pin("4321")  # type: ignore[union-attr]
    status, vm, _ = await api.call("PUT", f"/api/v1/accounts/{DID}/voicemail", {"pin": None})
    assert status == 200 and isinstance(vm, dict) and vm["pin_set"] is False and vm["max_messages"] == 50


async def test_aliases(api: Api) -> None:
    await api.call("POST", "/api/v1/accounts", {"did": DID})
    status, alias, _ = await api.call(
        "POST", f"/api/v1/accounts/{DID}/aliases", {"identity": "sip:+42073723123@ims.example.net;user=phone"}
    )
    assert status == 201 and isinstance(alias, dict) and alias["key"] == "42073723123"
    assert alias["allow_registration"] is False
    for spelling in ("42073723123@pstn", "tel:+42073723123", "%2B42073723123"):
        status, got, _ = await api.call("GET", f"/api/v1/accounts/{DID}/aliases/{spelling}")
        assert status == 200 and got == alias, spelling
    status, listing, _ = await api.call("GET", f"/api/v1/accounts/{DID}/aliases")
    assert status == 200 and listing == [alias]
    assert (await api.call("DELETE", f"/api/v1/accounts/{DID}/aliases/tel:+42073723123"))[0] == 204
    assert (await api.call("GET", f"/api/v1/accounts/{DID}/aliases"))[1] == []


async def test_delete_removes_aliases(api: Api) -> None:
    await api.call("POST", "/api/v1/accounts", SEED)
    assert (await api.call("DELETE", f"/api/v1/accounts/{DID}"))[0] == 204
    assert AliasDoc._get_collection().count_documents({}) == 0
    assert (await api.call("GET", f"/api/v1/accounts/{DID}"))[0] == 404
    # the alias is free again
    assert (await api.call("POST", "/api/v1/accounts", {**SEED, "did": "42000000003"}))[0] == 201


async def test_list_pagination_and_filters(api: Api) -> None:
    modes = ["forward_only", "voicemail_only", "reject"]
    for i in range(7):
        body = {
            "did": f"4200000010{i}",
            "answering_mode": modes[i % 3],
            "status": "suspended" if i == 6 else "active",
        }
        assert (await api.call("POST", "/api/v1/accounts", body))[0] == 201
    status, page, _ = await api.call("GET", "/api/v1/accounts?limit=3&offset=0")
    assert status == 200 and isinstance(page, dict)
    assert page["total"] == 7 and [a["did"] for a in page["items"]] == [
        "42000000100",
        "42000000101",
        "42000000102",
    ]
    assert page["next_after"] == "42000000102"
    # keyset cursor: walk all pages with next_after
    seen: list[str] = []
    after = ""
    while True:
        _, cursor_page, _ = await api.call("GET", f"/api/v1/accounts?limit=3{after}")
        assert isinstance(cursor_page, dict)
        seen += [a["did"] for a in cursor_page["items"]]
        if cursor_page["next_after"] is None:
            break
        after = f"&after={cursor_page['next_after']}"
    assert seen == [f"4200000010{i}" for i in range(7)]
    _, page2, _ = await api.call("GET", "/api/v1/accounts?limit=3&offset=6")
    assert isinstance(page2, dict) and [a["did"] for a in page2["items"]] == ["42000000106"]
    _, rejected, _ = await api.call("GET", "/api/v1/accounts?answering_mode=reject")
    assert isinstance(rejected, dict) and {a["did"] for a in rejected["items"]} == {
        "42000000102",
        "42000000105",
    }
    _, suspended, _ = await api.call("GET", "/api/v1/accounts?status=suspended&answering_mode=forward_only")
    assert isinstance(suspended, dict) and [a["did"] for a in suspended["items"]] == ["42000000106"]


async def test_uniqueness_is_enforced_by_the_database(api: Api) -> None:
    """Bypass the API: the unique indexes themselves refuse a second DID or alias key."""
    import pymongo.errors

    await api.call("POST", "/api/v1/accounts", SEED)
    with pytest.raises(pymongo.errors.DuplicateKeyError):
        AccountDoc._get_collection().insert_one({"did": DID})
    other = AccountDoc._get_collection().insert_one({"did": "42000000004"}).inserted_id
    with pytest.raises(pymongo.errors.DuplicateKeyError):
        AliasDoc._get_collection().insert_one({"key": "42073723123", "identity": "x", "account": other})


async def test_readiness_checks_mongo(api: Api) -> None:
    async with api.session.get(api.base + "/health/ready") as r:
        body = await r.json()
        assert r.status == 200 and body["checks"] == {"mongo": True}


async def test_database_down_is_503_not_500() -> None:
    """With MongoDB gone the API answers 503 problems (retryable) and readiness fails; no traceback."""
    import aiohttp
    import mongoengine

    from hss_adapter.api.app import build_app
    from hss_adapter.settings import ApiSettings
    from secondnum.http import bound_port, serve
    from secondnum.mongo import EmbeddedMongo, connect

    server = EmbeddedMongo(":memory:")
    server.start()
    connect(server.uri, "down_test", server_selection_timeout_ms=500)
    runner = await serve(build_app(ApiSettings(port=0, tokens=["t"])), "127.0.0.1", 0)
    try:
        base = f"http://127.0.0.1:{bound_port(runner)}"
        server.stop()
        async with aiohttp.ClientSession(headers={"Authorization": "Bearer t"}) as session:
            async with session.get(f"{base}/api/v1/accounts/{DID}") as r:
                body = await r.json(content_type=None)
                assert r.status == 503 and r.content_type == PROBLEM and "Traceback" not in str(body)
            async with session.post(f"{base}/api/v1/accounts", json={"did": DID}) as r:
                assert r.status == 503
            async with session.get(f"{base}/health/ready") as r:
                assert r.status == 503
    finally:
        await runner.cleanup()
        mongoengine.disconnect()
        server.stop()


async def test_merge_patch_media_type_is_accepted(api: Api) -> None:
    """RFC 7396 §4 registers application/merge-patch+json, as the OpenAPI document advertises for PATCH."""
    await api.call("POST", "/api/v1/accounts", SEED)
    status, body, _ = await api.call(
        "PATCH",
        f"/api/v1/accounts/{DID}",
        data=b'{"display_name": "Merge"}',
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert status == 200 and isinstance(body, dict) and body["display_name"] == "Merge"


def _response_schema(name: str) -> dict[str, Any]:
    from hss_adapter.api.openapi import document

    return {"$ref": f"#/components/schemas/{name}", "components": document()["components"]}


@pytest.mark.parametrize(
    "identity",
    ["sip:x\r\nSet-Cookie: y@h", "sip:a b@h", "tel:+42073723123\x00", "42073723123@pst\tn"],
)
async def test_alias_with_control_characters_is_422(api: Api, identity: str) -> None:
    """Found by schemathesis (tests/reliability): such an identity reached the Location header."""
    await api.call("POST", "/api/v1/accounts", {"did": DID})
    status, problem, ctype = await api.call("POST", f"/api/v1/accounts/{DID}/aliases", {"identity": identity})
    assert (status, ctype) == (422, PROBLEM) and isinstance(problem, dict) and problem["field"] == "identity"


async def test_alias_location_header_is_a_valid_path(api: Api) -> None:
    await api.call("POST", "/api/v1/accounts", {"did": DID})
    async with api.session.post(
        f"{api.base}/api/v1/accounts/{DID}/aliases",
        json={"identity": "sip:John.Doe@Example.NET"},
        headers={"Authorization": "Bearer test-token"},
    ) as r:
        assert r.status == 201
        location = r.headers["Location"]
    status, alias, _ = await api.call("GET", location)
    assert status == 200 and isinstance(alias, dict) and alias["key"] == "sip:John.Doe@example.net"


async def test_time_window_without_days_means_every_day(api: Api) -> None:
    """Found by schemathesis: days absent was returned as [] (the schema says minItems 1)."""
    import jsonschema

    await api.call("POST", "/api/v1/accounts", {"did": DID})
    status, body, _ = await api.call(
        "PUT", f"/api/v1/accounts/{DID}/follow-me", {"time_window": {"start": "09:00", "end": "17:00"}}
    )
    assert status == 200 and isinstance(body, dict), body
    jsonschema.validate(body, _response_schema("FollowMe"))
    assert body["time_window"]["days"] == ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    status, account, _ = await api.call("GET", f"/api/v1/accounts/{DID}")
    jsonschema.validate(account, _response_schema("Account"))


async def test_concurrent_duplicates_resolve_to_one_winner(api: Api) -> None:
    """Parallel creates of one DID, parallel claims of one alias: one 201, the rest 409, nothing half-made."""
    import asyncio

    results = await asyncio.gather(*(api.call("POST", "/api/v1/accounts", {"did": DID}) for _ in range(8)))
    assert sorted(r[0] for r in results) == [201] + [409] * 7
    dids = [f"4200000020{i}" for i in range(8)]
    for did in dids:
        assert (await api.call("POST", "/api/v1/accounts", {"did": did}))[0] == 201
    claims = await asyncio.gather(
        *(api.call("POST", f"/api/v1/accounts/{d}/aliases", {"identity": "tel:+42073723123"}) for d in dids)
    )
    assert sorted(r[0] for r in claims) == [201] + [409] * 7
    assert AliasDoc._get_collection().count_documents({"key": "42073723123"}) == 1
    # Accounts created with an alias that races: the loser leaves neither account nor alias behind.
    creates = await asyncio.gather(
        *(
            api.call(
                "POST", "/api/v1/accounts", {"did": f"4200000030{i}", "aliases": [{"identity": "sip:x@h"}]}
            )
            for i in range(6)
        )
    )
    assert sorted(r[0] for r in creates) == [201] + [409] * 5
    assert (
        AccountDoc._get_collection().count_documents({"did": {"$in": [f"4200000030{i}" for i in range(6)]}})
        == 1
    )
    assert AliasDoc._get_collection().count_documents({"key": "sip:x@h"}) == 1
