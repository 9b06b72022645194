"""The served OpenAPI document matches the router: every route documented, every documented path routed."""

from __future__ import annotations

import re

from hss_api import Api
from jsonschema import Draft202012Validator

from hss_adapter.api.openapi import document

METHODS = {"get", "put", "post", "patch", "delete"}


def _routed(api: Api) -> set[tuple[str, str]]:
    found = set()
    for route in api.app.router.routes():
        method = route.method.lower()
        if method not in METHODS:  # HEAD is added automatically for GET
            continue
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        found.add((method, str(path)))
    return found


def _documented(doc: dict[str, object]) -> set[tuple[str, str]]:
    paths = doc["paths"]
    assert isinstance(paths, dict)
    return {(m, p) for p, ops in paths.items() for m in ops if m in METHODS}


async def test_served_document_equals_routes(api: Api) -> None:
    status, served, ctype = await api.call("GET", "/api/v1/openapi.json")
    assert status == 200 and ctype == "application/json" and isinstance(served, dict)
    assert served["openapi"].startswith("3.")
    routed, documented = _routed(api), _documented(served)
    assert routed - documented == set(), "routes missing from OpenAPI"
    assert documented - routed == set(), "documented paths without a route"


def test_every_operation_is_complete() -> None:
    doc = document()
    schemas = doc["components"]["schemas"]
    for path, ops in doc["paths"].items():
        params = set(re.findall(r"{(\w+)}", path))
        declared = {p["name"] for p in ops.get("parameters", []) if p["in"] == "path"}
        assert params == declared, path
        for method, op in ops.items():
            if method not in METHODS:
                continue
            assert op["responses"], (path, method)
            refs = re.findall(r"#/components/schemas/(\w+)", str(op))
            assert all(r in schemas for r in refs), (path, method, refs)
    for name, schema in schemas.items():
        Draft202012Validator.check_schema(schema)  # each is a valid JSON Schema
        assert name


def test_error_statuses_are_documented() -> None:
    """Every /api operation documents 401 and 503; with a {did} path parameter also 404 and 422. (The document
    itself and the process diagnostics under /api/v1/debug/ have no database behind them: no 503.)"""
    doc = document()
    for path, ops in doc["paths"].items():
        if not path.startswith("/api/") or path.endswith("openapi.json") or path.startswith("/api/v1/debug/"):
            continue
        for method, op in ops.items():
            if method not in METHODS:
                continue
            codes = set(op["responses"])
            assert {"401", "503"} <= codes, (method, path, sorted(codes))
            if "{did}" in path:
                assert {"404", "422"} <= codes, (method, path, sorted(codes))
