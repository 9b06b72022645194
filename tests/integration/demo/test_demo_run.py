"""`secondnum demo` against a `secondnum up` started by the test: the seed's three stories over SIPp and a
pjsua2 phone, checked on the wire, in the audio heard and through the REST APIs; and the demo failing
(exit 1, the refusal reported) when the account cannot pay."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest
from demo_stack import SECONDNUM, Ports, Up, clean_env, http, write_config
from testutil import require_binary

pytestmark = [pytest.mark.slow, pytest.mark.sipp, pytest.mark.pjsua]

DID = "42027777100"
CHECKS = (
    "the mobile rang with 42027777100 as caller ID",
    "unanswered, the AS gave up on the mobile",
    "the caller heard the greeting and left a message",
    "calling from the alias reaches the mailbox and says the message count",
    "the customer heard the message left in story 1",
    "DTMF navigation of the menu works",
    "the menu placed the call to the keyed number 420273333444",
    "the outgoing call left with 42027777100 as caller ID",
    "the outgoing call was charged to the DID account",
)


def run_demo(tmp_path: Path, config: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SECONDNUM, "-c", str(config), "demo", "--workdir", str(tmp_path / "demo")],
                          capture_output=True, text=True, env=env, timeout=240, check=False)


@pytest.fixture(autouse=True)
def _tools() -> None:
    require_binary("sipp")
    require_binary("espeak-ng")


def test_demo_walks_the_three_stories(tmp_path: Path) -> None:
    ports = Ports.pick()
    config = write_config(tmp_path, ports)
    up = Up(tmp_path, config).start()
    try:
        result = run_demo(tmp_path, config, clean_env())
    finally:
        rc, _ = up.interrupt(timeout=60)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    summary = out[out.index("\nSummary"):]
    for name in CHECKS:
        assert f"PASS  {name}" in summary, summary
    assert f"{len(CHECKS)}/{len(CHECKS)} checks passed" in summary
    # The steps show the numbers on the wire.
    assert "P-Asserted-Identity: <tel:+42027777100>" in out
    assert f"Route: <sip:127.0.0.1:{ports.scscf};lr;orig>" in out
    assert "INVITE tel:+420273333444" in out
    assert rc == 0


def test_demo_fails_and_reports_the_refusal_when_the_balance_is_zero(tmp_path: Path,
                                                                     mongo_server: str) -> None:
    import pymongo

    database = f"demo_{uuid.uuid4().hex[:8]}"
    env = clean_env(MONGO_URI=mongo_server, SECONDNUM_MONGO__DATABASE=database)
    ports = Ports.pick()
    config = write_config(tmp_path, ports)
    up = Up(tmp_path, config, env=env).start()
    client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(mongo_server)
    try:
        client[database]["ocs_accounts"].update_one({"_id": DID}, {"$set": {"balance": 0}})
        status, balance = http("GET", f"http://127.0.0.1:{ports.ocs_http}/api/v1/accounts/{DID}")
        assert status == 200 and balance["balance"] == "0.000"
        result = run_demo(tmp_path, config, env)
    finally:
        rc, _ = up.interrupt(timeout=60)
        client.drop_database(database)
        client.close()
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    summary = out[out.index("\nSummary"):]
    assert "FAIL  the outgoing call left with 42027777100 as caller ID" in summary
    assert "FAIL  the outgoing call was charged to the DID account" in summary
    assert "the demo FAILED" in summary
    assert "refused by the OCS" in out  # the phone heard "Sorry, that call is not allowed."
    assert "no INVITE reached the S-CSCF (balance 0.000)" in out
    assert rc == 0
