"""`secondnum up` for real: one process runs every component on loopback, prints where each listens, answers
on every REST API, stops cleanly on Ctrl-C (SIGINT) and finds its data again on the next start."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from demo_stack import Ports, Up, clean_env, http, write_config

pytestmark = [pytest.mark.slow]

DID = "42027777100"
TOKEN = "dev-token"
DRAIN_LIMIT = 5.0


def test_up_serves_everything_stops_on_ctrl_c_and_keeps_data(tmp_path: Path) -> None:
    ports = Ports.pick()
    config = write_config(tmp_path, ports, drain_limit=DRAIN_LIMIT)
    up = Up(tmp_path, config).start()
    try:
        out = up.output()
        table = out[out.index("component  what"):]
        for component, where in (("mongo", "data: " + str(tmp_path / "mongo")),
                                 ("ocs", f"127.0.0.1:{ports.ocs_diameter}"),
                                 ("ocs", f"http://127.0.0.1:{ports.ocs_http}/api/v1/"),
                                 ("hss", f"http://127.0.0.1:{ports.api}/api/v1/accounts"),
                                 ("media", f"127.0.0.1:{ports.media_sip}"),
                                 ("media", f"127.0.0.1:{ports.rtp_min}-{ports.rtp_min + 99}"),
                                 ("media", f"http://127.0.0.1:{ports.media_api}/api/mailboxes/"),
                                 ("as", f"127.0.0.1:{ports.as_sip}"),
                                 ("as", f"http://127.0.0.1:{ports.as_http}/api/v1/cdrs")):
            assert any(line.startswith(component) and where in line for line in table.splitlines()), \
                (component, where, table)

        # The seed's example, provisioned on first start.
        status, account = http("GET", f"http://127.0.0.1:{ports.api}/api/v1/accounts/{DID}", token=TOKEN)
        assert status == 200, account
        assert account["answering_mode"] == "forward_then_voicemail"
        assert account["aliases"][0]["identity"] == "42073723123@pstn"
        assert account["follow_me"]["targets"][0]["uri"] == "tel:+42073723123"
        status, balance = http("GET", f"http://127.0.0.1:{ports.ocs_http}/api/v1/accounts/{DID}")
        assert status == 200 and balance["balance"] == "10.000", balance
        status, tariffs = http("GET", f"http://127.0.0.1:{ports.ocs_http}/api/v1/tariffs")
        assert status == 200 and tariffs["tariffs"], tariffs
        # Every REST API answers; the AS is ready (MongoDB, the Diameter peer and the profile cache).
        status, ready = http("GET", f"http://127.0.0.1:{ports.as_http}/health/ready")
        assert status == 200 and ready["checks"] == {"mongo": True, "diameter": True, "profiles": True}, ready
        status, cdrs = http("GET", f"http://127.0.0.1:{ports.as_http}/api/v1/cdrs")
        assert status == 200 and "items" in cdrs
        status, box = http("GET", f"http://127.0.0.1:{ports.media_api}/api/mailboxes/{DID}/messages")
        assert status == 200 and box == {"messages": []}
        status, _ = http("GET", f"http://127.0.0.1:{ports.api}/api/v1/openapi.json", token=TOKEN)
        assert status == 200

        # Data changed in this run must be there after a restart.
        status, _ = http("POST", f"http://127.0.0.1:{ports.ocs_http}/api/v1/accounts/{DID}/topup",
                         {"amount": "1.50"})
        assert status == 200
        status, created = http("POST", f"http://127.0.0.1:{ports.api}/api/v1/accounts",
                               {"did": "42027777199", "answering_mode": "voicemail_only"}, token=TOKEN)
        assert status == 201, created
    finally:
        rc, seconds = up.interrupt(timeout=DRAIN_LIMIT + 45)
    assert rc == 0, up.output()[-3000:]
    assert "stopped cleanly." in up.output()
    print(f"first start ready in {up.ready_seconds:.1f} s, stopped in {seconds:.1f} s")

    again = Up(tmp_path, config).start()
    try:
        status, balance = http("GET", f"http://127.0.0.1:{ports.ocs_http}/api/v1/accounts/{DID}")
        assert status == 200 and balance["balance"] == "11.500", balance  # kept, not re-seeded
        status, account = http("GET", f"http://127.0.0.1:{ports.api}/api/v1/accounts/42027777199",
                               token=TOKEN)
        assert status == 200 and account["answering_mode"] == "voicemail_only"
        status, listing = http("GET", f"http://127.0.0.1:{ports.api}/api/v1/accounts", token=TOKEN)
        assert status == 200 and sorted(a["did"] for a in listing["items"]) == [DID, "42027777199"], listing
    finally:
        rc, _ = again.interrupt(timeout=DRAIN_LIMIT + 45)
    assert rc == 0, again.output()[-3000:]
    print(f"restart ready in {again.ready_seconds:.1f} s")


def test_up_no_seed_provisions_nothing(tmp_path: Path) -> None:
    ports = Ports.pick()
    up = Up(tmp_path, write_config(tmp_path, ports), args=["up", "--no-seed"]).start()
    try:
        status, _ = http("GET", f"http://127.0.0.1:{ports.api}/api/v1/accounts/{DID}", token=TOKEN)
        assert status == 404
        status, _ = http("GET", f"http://127.0.0.1:{ports.ocs_http}/api/v1/accounts/{DID}")
        assert status == 404
        assert "seed's example ready" not in up.output()
    finally:
        rc, _ = up.interrupt(timeout=DRAIN_LIMIT + 45)
    assert rc == 0


def test_port_in_use_names_the_component_and_setting(tmp_path: Path) -> None:
    ports = Ports.pick()
    config = write_config(tmp_path, ports)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", ports.api))
        squatter.listen()
        up = Up(tmp_path, config)
        with pytest.raises(AssertionError, match="exited 4"):
            up.start(timeout=90)
    out = up.output()
    assert f"hss: port {ports.api} is in use" in out, out[-2000:]
    assert "[api] port (SECONDNUM_API__PORT)" in out
    assert "Traceback" not in out


@pytest.mark.parametrize(("component", "health"), [
    ("ocs", "ocs_http"), ("hss", "api"), ("media", "media_api"), ("as", "as_http"),
])
def test_each_component_runs_alone_with_embedded_mongo(tmp_path: Path, component: str, health: str) -> None:
    ports = Ports.pick()
    up = Up(tmp_path, write_config(tmp_path, ports), args=[component, "--embedded-mongo"]).start()
    try:
        out = up.output()
        assert "mongo      MongoDB (embedded SecantusDB)" in out
        assert f"\n{component} " in out[out.index("component  what"):]
        status, body = http("GET", f"http://127.0.0.1:{getattr(ports, health)}/health/live")
        assert status == 200, body
    finally:
        rc, _ = up.interrupt(timeout=DRAIN_LIMIT + 45)
    assert rc == 0, up.output()[-2000:]


def test_component_without_mongo_says_what_to_set(tmp_path: Path) -> None:
    up = Up(tmp_path, write_config(tmp_path, Ports.pick()), args=["media"], env=clean_env())
    with pytest.raises(AssertionError, match="exited 1"):
        up.start(timeout=60)
    assert "set MONGO_URI" in up.output()
