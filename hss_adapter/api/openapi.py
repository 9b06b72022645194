"""The OpenAPI 3.1 document of the provisioning API, served at ``/api/v1/openapi.json``.

Request and response bodies reference :data:`hss_adapter.api.schemas.SCHEMAS`, the very schemas the
handlers validate with. A test checks that every route is documented and every documented path is routed.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from hss_adapter.api.schemas import E164, SCHEMAS

PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}


def _json(name: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}


def _op(summary: str, ok: int, out: str | None, body: str | None = None, *,
        errors: tuple[int, ...] = (401, 404, 422)) -> dict[str, Any]:
    responses: dict[str, Any] = {str(ok): {"description": "OK" if ok != 204 else "No Content"}}
    if out is not None:
        responses[str(ok)]["content"] = _json(out)
    for status in sorted(set(errors) | {503} | ({400} if body else set())):
        responses[str(status)] = {"description": _ERROR_TEXT[status], "content": PROBLEM}
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    if body is not None:
        content_type = "application/merge-patch+json" if summary.startswith("Merge") else "application/json"
        op["requestBody"] = {"required": True, "content": {content_type: {"schema": {
            "$ref": f"#/components/schemas/{body}"}}}}
    return op


_ERROR_TEXT = {400: "Body is not valid JSON", 401: "Missing or invalid bearer token", 404: "Unknown resource",
               409: "Duplicate DID or alias", 422: "Invalid field (the problem names it)",
               503: "Subscriber database unavailable (retry)"}

_DID = {"name": "did", "in": "path", "required": True, "schema": {"type": "string", "pattern": E164},
        "description": "E.164 digits, optionally with '+'"}
_IDENTITY = {"name": "identity", "in": "path", "required": True, "schema": {"type": "string"},
             "description": "alias identity in any spelling, URL-encoded"}
_LIST_PARAMS = [
    {"name": "limit", "in": "query",
     "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}},
    {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "default": 0}},
    {"name": "after", "in": "query", "schema": {"type": "string"},
     "description": "keyset cursor: only DIDs greater than this one (use the page's next_after)"},
    {"name": "status", "in": "query", "schema": SCHEMAS["AccountSettings"]["properties"]["status"]},
    {"name": "answering_mode", "in": "query",
     "schema": SCHEMAS["AccountSettings"]["properties"]["answering_mode"]},
]

_PLAIN = {"200": {"description": "OK"}}

PATHS: dict[str, dict[str, Any]] = {
    "/health/live": {"get": {"summary": "Liveness", "security": [], "responses": _PLAIN}},
    "/health/ready": {"get": {"summary": "Readiness (MongoDB ping)", "security": [],
                              "responses": {**_PLAIN, "503": {"description": "Not ready or draining"}}}},
    "/metrics": {"get": {"summary": "Prometheus metrics", "security": [], "responses": _PLAIN}},
    "/api/v1/openapi.json": {"get": {"summary": "This document", "responses": {
        **_PLAIN, "401": {"description": _ERROR_TEXT[401], "content": PROBLEM}}}},
    "/api/v1/debug/objects": {"get": {
        "summary": "Live objects by type (a diagnostic of every component: a leak, or memory kept)",
        "description": "Walks every object the collector tracks (~0.1 s per million). With "
                       "PYTHONTRACEMALLOC=1 also `allocations` and `growth` (source lines).",
        "parameters": [{"name": "top", "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 30}},
                       {"name": "mappings", "in": "query", "description":
                        "also list this many of the most resident anonymous memory mappings with the "
                        "objects in each (what keeps memory that live counts call free)",
                        "schema": {"type": "integer", "minimum": 0, "maximum": 50, "default": 0}}],
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {
            "type": "object", "required": ["tracked_objects", "python_allocated_blocks", "types"]}}}},
            "400": {"description": "top or mappings out of range", "content": PROBLEM},
            "401": {"description": _ERROR_TEXT[401], "content": PROBLEM}}}},
    "/api/v1/accounts": {
        "post": _op("Create an account (with aliases)", 201, "Account", "AccountCreate",
                    errors=(401, 409, 422)),
        "get": {**_op("List accounts", 200, "AccountPage", errors=(401, 422)), "parameters": _LIST_PARAMS},
    },
    "/api/v1/accounts/{did}": {
        "parameters": [_DID],
        "get": _op("Read an account", 200, "Account"),
        "put": _op("Replace an account's settings", 200, "Account", "AccountSettings"),
        "patch": _op("Merge-patch an account's settings (RFC 7396)", 200, "Account", "AccountSettings"),
        "delete": _op("Delete an account and its aliases", 204, None),
    },
    "/api/v1/accounts/{did}/aliases": {
        "parameters": [_DID],
        "get": {**_op("List aliases", 200, None), "responses": {
            "200": {"description": "OK", "content": {"application/json": {"schema": {
                "type": "array", "items": {"$ref": "#/components/schemas/Alias"}}}}},
            **{str(c): {"description": _ERROR_TEXT[c], "content": PROBLEM} for c in (401, 404, 422, 503)},
        }},
        "post": _op("Add an alias", 201, "Alias", "AliasInput", errors=(401, 404, 409, 422)),
    },
    "/api/v1/accounts/{did}/aliases/{identity}": {
        "parameters": [_DID, _IDENTITY],
        "get": _op("Read an alias", 200, "Alias"),
        "delete": _op("Remove an alias", 204, None),
    },
    "/api/v1/accounts/{did}/follow-me": {
        "parameters": [_DID],
        "get": _op("Read follow-me", 200, "FollowMe"),
        "put": _op("Replace follow-me", 200, "FollowMe", "FollowMe"),
        "patch": _op("Merge-patch follow-me (RFC 7396)", 200, "FollowMe", "FollowMe"),
    },
    "/api/v1/accounts/{did}/voicemail": {
        "parameters": [_DID],
        "get": _op("Read voicemail settings", 200, "Voicemail"),
        "put": _op("Replace voicemail settings (pin in, hash stored)", 200, "Voicemail", "VoicemailInput"),
        "patch": _op("Merge-patch voicemail settings (RFC 7396)", 200, "Voicemail", "VoicemailInput"),
    },
}


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "secondnum provisioning API", "version": "1.0.0",
                 "description": "Accounts, aliases, follow-me and voicemail of the 2nd-number service. "
                                "Errors are RFC 9457 problem documents."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": PATHS,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


async def serve_openapi(request: web.Request) -> web.Response:
    return web.json_response(document())
