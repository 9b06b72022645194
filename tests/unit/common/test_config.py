"""Settings loading: TOML + environment, each bad key named in the error."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

import pytest

from secondnum.config import ConfigError, build, load_section, read_toml


@dataclasses.dataclass(frozen=True)
class Peer:
    host: str
    port: int = 3868


@dataclasses.dataclass(frozen=True)
class Sample:
    sip_port: int = 5060
    ratio: float = 0.5
    enabled: bool = True
    mode: Literal["a", "b"] = "a"
    trusted: list[str] = dataclasses.field(default_factory=lambda: ["127.0.0.1"])
    peers: list[Peer] = dataclasses.field(default_factory=list)
    data_dir: Path = Path("var")
    uri: str | None = None


def test_defaults_when_section_absent() -> None:
    assert load_section(Sample, {}, "as", environ={}) == Sample()


def test_toml_values_and_nested_tables(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text('[as]\nsip_port = 5070\nmode = "b"\n[[as.peers]]\nhost = "10.0.0.1"\n')
    s = load_section(Sample, read_toml(f), "as", environ={})
    assert s.sip_port == 5070 and s.mode == "b" and s.peers == [Peer("10.0.0.1", 3868)]


@pytest.mark.parametrize(
    ("env", "field", "expected"),
    [
        ({"SECONDNUM_AS__SIP_PORT": "5080"}, "sip_port", 5080),
        ({"SECONDNUM_AS__RATIO": "1.5"}, "ratio", 1.5),
        ({"SECONDNUM_AS__ENABLED": "off"}, "enabled", False),
        ({"SECONDNUM_AS__TRUSTED": "10.0.0.1, 10.0.0.2"}, "trusted", ["10.0.0.1", "10.0.0.2"]),
        ({"SECONDNUM_AS__DATA_DIR": "/tmp/x"}, "data_dir", Path("/tmp/x")),
        ({"SECONDNUM_AS__URI": ""}, "uri", None),
    ],
)
def test_environment_overrides(env: dict[str, str], field: str, expected: object) -> None:
    s = load_section(Sample, {"as": {"sip_port": 1}}, "as", environ=env)
    assert getattr(s, field) == expected


def test_mongo_uri_env_alias() -> None:
    @dataclasses.dataclass(frozen=True)
    class M:
        uri: str = ""

    assert load_section(M, {}, "mongo", environ={"MONGO_URI": "mongodb://x"}).uri == "mongodb://x"


@pytest.mark.parametrize(
    ("values", "key", "fragment"),
    [
        ({"sip_prt": 1}, "as.sip_prt", "unknown setting"),
        ({"sip_port": "many"}, "as.sip_port", "integer"),
        ({"sip_port": True}, "as.sip_port", "integer"),
        ({"enabled": "maybe"}, "as.enabled", "true or false"),
        ({"mode": "c"}, "as.mode", "one of"),
        ({"trusted": 5}, "as.trusted", "list"),
        ({"peers": [{"port": 1}]}, "as.peers[0].host", "required"),
        ({"peers": [{"host": "h", "port": "x"}]}, "as.peers[0].port", "integer"),
    ],
)
def test_errors_name_the_key(values: dict[str, object], key: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        build(Sample, values, "as")
    assert info.value.key == key
    assert fragment in str(info.value)


def test_bad_toml_file_is_a_config_error(tmp_path: Path) -> None:
    f = tmp_path / "bad.toml"
    f.write_text("[as\nsip_port = ")
    with pytest.raises(ConfigError, match="not valid TOML"):
        read_toml(f)
    with pytest.raises(ConfigError, match="file not found"):
        read_toml(tmp_path / "missing.toml")
