"""The configuration each pod starts with is one the components accept.

For every secondnum container of every overlay: the TOML of its ConfigMap plus its environment (field
references given example values, ``$(VAR)`` expanded like the kubelet does, Secrets as placeholders)
goes through the same loading and checking as ``secondnum --config ... check-config`` in that pod:
unknown sections or keys, wrong types and invalid values (e.g. a SIP URI) fail here, not at rollout.
"""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from k8s_checks import OVERLAYS, Doc, config_document, container_env, pod_labels, pod_spec, render, workloads

from secondnum import cli
from secondnum.config import ConfigError
from secondnum.mongo import MongoSettings
from secondnum.service import Config

COMPONENT_OF = {"as": "as", "media": "media", "ocs": "ocs", "hss": "hss"}
CLUSTER_IP = "10.96.0.20"


SECRETS = {"connectionString.standard": "mongodb://secondnum:pw@mongodb-0.mongodb:27017/?replicaSet=rs0"}


def pods(overlay: str) -> list[tuple[str, dict[str, Any], dict[str, str], Doc]]:
    """(component, TOML document, environment, container) of each secondnum pod of ``overlay``."""
    docs = render(f"overlays/{overlay}")
    found = []
    for w in workloads(docs):
        if pod_labels(w).get("app.kubernetes.io/name") != "secondnum":
            continue
        spec = pod_spec(w)
        container = spec["containers"][0]
        links: dict[str, str] = {}
        if spec.get("enableServiceLinks", True):
            # The docker-link variables the kubelet adds for every Service of the namespace.
            links = {f"{d['metadata']['name'].upper().replace('-', '_')}_SERVICE_HOST": CLUSTER_IP
                     for d in docs if d["kind"] == "Service" and d["spec"].get("clusterIP") != "None"}
        with_links = {**container, "env": [{"name": k, "value": v} for k, v in links.items()]
                      + container.get("env", [])}
        env = container_env(w, with_links, SECRETS)
        document = config_document(docs, w)
        assert document is not None, f"{w['metadata']['name']} mounts no configuration"
        found.append((pod_labels(w)["app.kubernetes.io/component"], document, env, container))
    return found


CASES = [(overlay, component) for overlay in OVERLAYS for component in COMPONENT_OF]


@pytest.mark.parametrize(("overlay", "component"), CASES)
def test_pod_configuration_accepted(overlay: str, component: str) -> None:
    matching = [p for p in pods(overlay) if p[0] == component]
    assert len(matching) == 1
    _, document, env, container = matching[0]
    assert container["args"] == ["--config", "/etc/secondnum/secondnum.toml", component]
    unresolved = {k: v for k, v in env.items() if k.startswith("SECONDNUM_") and "$(" in v}
    assert not unresolved, f"environment references nothing defined: {unresolved}"
    config = Config(document, env)
    config.check_sections(cli._component_sections())
    config.section(cli.RunSettings, "run")
    config.section(cli.LogSettings, "log")
    assert config.section(MongoSettings, "mongo").uri.startswith("mongodb://")
    module = importlib.import_module(cli.COMPONENTS[component])
    module.check_config(config)


def test_unknown_key_is_caught() -> None:
    """The test above would notice a key the components do not know."""
    _, document, env, _ = next(p for p in pods("lab") if p[0] == "as")
    broken = {**document, "as": {**document["as"], "sip_listen": "0.0.0.0"}}
    with pytest.raises(ConfigError, match=r"as\.sip_listen"):
        importlib.import_module(cli.COMPONENTS["as"]).check_config(Config(broken, env))
