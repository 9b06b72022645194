"""`[ro]` and `[ocs]` settings through the shared TOML loader; defaults are loopback."""

from __future__ import annotations

import pytest

from charging.settings import DiameterPeerSettings, OcsSettings, RoClientSettings
from secondnum.config import ConfigError, load_section


def test_defaults_are_loopback() -> None:
    ro = load_section(RoClientSettings, {}, "ro")
    assert ro.peers == [DiameterPeerSettings()] and ro.peers[0].address == "127.0.0.1"
    assert (ro.tx_seconds, ro.ccfh, ro.quota_request_seconds) == (5.0, "TERMINATE", 8.0)
    ocs = load_section(OcsSettings, {}, "ocs")
    assert (ocs.listen_address, ocs.http_address) == ("127.0.0.1", "127.0.0.1")


def test_peers_from_toml_tables() -> None:
    doc = {
        "ro": {
            "ccfh": "RETRY_AND_TERMINATE",
            "peers": [
                {"host": "ocs1.op.net", "realm": "op.net", "address": "127.0.0.1", "port": 3868},
                {"host": "ocs2.op.net", "realm": "op.net", "port": 3869, "priority": 1},
            ],
        }
    }
    ro = load_section(RoClientSettings, doc, "ro")
    assert [p.peer_config().priority for p in ro.peers] == [0, 1]
    assert ro.peers[1].peer_config().port == 3869


@pytest.mark.parametrize(
    "doc",
    [{"ro": {"ccfh": "MAYBE"}}, {"ro": {"tx_seconds": "soon"}}, {"ro": {"peers": [{"hostname": "x"}]}}],
)
def test_bad_settings_are_reported(doc: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        load_section(RoClientSettings, doc, "ro")
