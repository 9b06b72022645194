"""Schemathesis against the provisioning API (hss_adapter) on a real SecantusDB, bounded to ~60 s.

The API runs in this test's event loop (``hss_adapter.api.app.build_app`` on an ephemeral port); the
``schemathesis`` CLI runs as a subprocess against its own OpenAPI document (``/api/v1/openapi.json``) with the
checks "no 5xx, documented status codes, content types, headers and response schemas". Two oracles:

* schemathesis' own results, read from its NDJSON event report;
* the server side: every exception aiohttp logs as unhandled (a dropped connection on the client side).

Failures already reported to the owning area and not yet fixed go into ``KNOWN`` (printed, not failed)
with a deterministic strict-xfail regression test, so that a fix shows up as an XPASS to clean up. Anything
else fails the test. The three findings of the first runs (fixed in hss_adapter since) keep their
regression tests below.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import jsonschema
import pytest
from aiohttp import web

from hss_adapter.api.app import build_app
from hss_adapter.api.openapi import document
from hss_adapter.settings import ApiSettings
from secondnum import http

TOKEN = "fuzz-token"
MAX_TIME = int(os.environ.get("SECONDNUM_API_FUZZ_SECONDS", "55"))
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,"
          "response_headers_conformance")

# (check code, operation, substring of the message) -> where it is written up. Empty: nothing open.
KNOWN: dict[tuple[str, str, str], str] = {}
KNOWN_SERVER_ERRORS: tuple[str, ...] = ()
# aiohttp logs malformed requests it answered 400 itself (schemathesis probes a NUL byte in a header).
ANSWERED_400 = ("BadHttpMessage", "BadStatusLine", "InvalidHeader", "LineTooLong")


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.errors: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1] if record.exc_info else None
        self.errors[f"{type(exc).__name__}: {exc}" if exc else record.getMessage()] += 1


def _known(code: str, operation: str, message: str) -> str | None:
    for (k_code, k_op, k_text), why in KNOWN.items():
        if code == k_code and k_op in ("*", operation) and k_text in message:
            return why
    return None


def _read_report(report_dir: Path) -> tuple[Counter[str], Counter[str], int]:
    """(known findings, new findings, scenarios run) from the NDJSON event stream."""
    known: Counter[str] = Counter()
    new: Counter[str] = Counter()
    scenarios = 0
    for path in report_dir.glob("*.ndjson"):
        for line in path.read_text().splitlines():
            event = json.loads(line)
            if "ScenarioFinished" in event:
                scenarios += 1
                for checks in event["ScenarioFinished"]["recorder"].get("checks", {}).values():
                    for check in checks:
                        failure = (check.get("failure_info") or {}).get("failure")
                        if check.get("status") != "failure" or not failure:
                            continue
                        key = (failure["code"], failure["operation"], failure["message"])
                        why = _known(*key)
                        (known if why else new)[f"{key[0]} {key[1]}: {why or key[2][:300]}"] += 1
            elif "NonFatalError" in event:
                err = event["NonFatalError"]
                key = (err["value"]["type"], err["label"], err["value"]["message"])
                why = _known(*key)
                (known if why else new)[f"{key[0]} {key[1]}: {why or key[2][:300]}"] += 1
    return known, new, scenarios


@pytest.fixture
async def api(mongo_uri: str) -> AsyncIterator[web.AppRunner]:
    runner = await http.serve(build_app(ApiSettings(tokens=[TOKEN])), "127.0.0.1", 0)
    try:
        yield runner
    finally:
        await runner.cleanup()


@pytest.mark.slow
async def test_provisioning_api_conforms_under_schemathesis(api: web.AppRunner, tmp_path: Path) -> None:
    port = http.bound_port(api)
    collect = _Collect()
    logging.getLogger("aiohttp").addHandler(collect)
    exe = Path(sys.executable).with_name("schemathesis")
    try:
        proc = await asyncio.create_subprocess_exec(
            str(exe), "run", f"http://127.0.0.1:{port}/api/v1/openapi.json",
            "-H", f"Authorization: Bearer {TOKEN}", "--checks", CHECKS, "--max-examples", "30",
            "--max-time", str(MAX_TIME), "--workers", "1", "--no-color", "--request-timeout", "10",
            "--report", "ndjson", "--report-dir", str(tmp_path), "--generation-database", "none",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"})
        out, _ = await asyncio.wait_for(proc.communicate(), MAX_TIME + 90)
    finally:
        logging.getLogger("aiohttp").removeHandler(collect)
    text = out.decode(errors="replace")
    summary = text[text.rfind("SUMMARY"):] if "SUMMARY" in text else text[-3000:]
    known, new, scenarios = _read_report(tmp_path)
    server_new = {e: n for e, n in collect.errors.items()
                  if not any(k in e for k in KNOWN_SERVER_ERRORS) and not e.startswith(ANSWERED_400)}
    print(f"\nschemathesis: {scenarios} scenarios; exit {proc.returncode}\n{summary[-2500:]}")
    for finding, n in known.items():
        print(f"  KNOWN x{n}: {finding}")
    for err, n in collect.errors.items():
        print(f"  server unhandled x{n}: {err[:200]}")
    assert scenarios > 50, text[-3000:]
    selected = re.search(r"Selected: (\d+)/(\d+)", text)
    tested = re.search(r"Tested: (\d+)", text)
    assert selected and tested, text[-3000:]
    # Every operation of the document was selected and exercised (a path schemathesis cannot use is not).
    assert selected.group(1) == selected.group(2) == tested.group(1) and int(tested.group(1)) >= 15, summary
    assert not new, "new schemathesis findings:\n" + "\n".join(f"x{n} {f}" for f, n in new.items())
    assert not server_new, f"unhandled server exceptions: {server_new}"


# --- regressions of the schemathesis findings (alias with CR/LF dropped the connection; time_window ------
# --- without days broke the response schema; undocumented 422; all fixed in hss_adapter) ----------------

async def _request(port: int, method: str, path: str, body: object | None = None) -> tuple[int, object]:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as session, \
            session.request(method, f"http://127.0.0.1:{port}{path}", json=body) as resp:
        data = await resp.json(content_type=None) if resp.content_length != 0 else None
        return resp.status, data


def _schema(name: str) -> dict[str, object]:
    doc = document()
    return {"$ref": f"#/components/schemas/{name}", "components": doc["components"]}


async def test_alias_with_control_characters_gets_422(api: web.AppRunner) -> None:
    port = http.bound_port(api)
    status, _ = await _request(port, "POST", "/api/v1/accounts", {"did": "42027777100"})
    assert status == 201
    status, _ = await _request(port, "POST", "/api/v1/accounts/42027777100/aliases",
                               {"identity": "sip:x\r\nSet-Cookie: y@h"})
    assert status == 422


async def test_follow_me_time_window_response_matches_schema(api: web.AppRunner) -> None:
    port = http.bound_port(api)
    status, _ = await _request(port, "POST", "/api/v1/accounts", {"did": "42027777101"})
    assert status == 201
    status, body = await _request(port, "PUT", "/api/v1/accounts/42027777101/follow-me",
                                  {"time_window": {"start": "09:00", "end": "17:00"}})
    assert status == 200, body
    jsonschema.validate(body, _schema("FollowMe"))


async def test_aliases_422_is_documented(api: web.AppRunner) -> None:
    port = http.bound_port(api)
    status, _ = await _request(port, "GET", "/api/v1/accounts/0/aliases")
    documented = document()["paths"]["/api/v1/accounts/{did}/aliases"]["get"]["responses"]
    assert str(status) in documented, (status, sorted(documented))
