"""Cross-object checks of every rendered overlay (k8s/overlays/*), and proof that each check bites.

The schema validation itself is k8s/validate.sh (tests/k8s/test_k8s_validate.py runs it).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from k8s_checks import (
    ALL_CHECKS,
    OVERLAYS,
    Doc,
    check_default_deny,
    check_grace_period,
    check_hpas,
    check_images,
    check_pdbs,
    check_probes,
    check_references,
    check_resources,
    check_security,
    check_services,
    check_sip_ingress,
    check_trusted_scscf,
    check_workload_selectors,
    containers,
    of_kind,
    pod_labels,
    pod_spec,
    render,
    workloads,
)

# Secrets the production overlay expects to exist already (README "Deployment"); the operator writes
# secondnum-mongo from the MongoDBCommunity resource.
PRODUCTION_EXTERNAL = frozenset({"secondnum-api-tokens", "secondnum-mongo", "secondnum-mongodb-password"})

_cache: dict[str, list[Doc]] = {}


def rendered(overlay: str) -> list[Doc]:
    if overlay not in _cache:
        _cache[overlay] = render(f"overlays/{overlay}")
    return copy.deepcopy(_cache[overlay])


def find(docs: list[Doc], kind: str, name_prefix: str) -> Doc:
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"].startswith(name_prefix))


def test_overlays_present() -> None:
    assert OVERLAYS == ["lab", "production"]


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda c: c.__name__)
def test_overlay_passes(overlay: str, check: Callable[[list[Doc]], list[str]]) -> None:
    assert check(rendered(overlay)) == []


def test_lab_references_all_rendered() -> None:
    assert check_references(rendered("lab")) == []


def test_production_references_only_documented_secrets() -> None:
    docs = rendered("production")
    assert check_references(docs, PRODUCTION_EXTERNAL) == []
    # And those really are absent: the overlay must not ship placeholder Secrets.
    assert of_kind(docs, "Secret") == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_component_present_once(overlay: str) -> None:
    docs = rendered(overlay)
    components = sorted(pod_labels(w).get("app.kubernetes.io/component", "") for w in workloads(docs)
                        if pod_labels(w).get("app.kubernetes.io/name") == "secondnum")
    assert components == ["as", "hss", "media", "ocs"]
    kinds = {pod_labels(w)["app.kubernetes.io/component"]: w["kind"] for w in workloads(docs)
             if pod_labels(w).get("app.kubernetes.io/name") == "secondnum"}
    assert kinds["as"] == "StatefulSet"
    for w in workloads(docs):
        if pod_labels(w).get("app.kubernetes.io/name") == "secondnum":
            assert pod_labels(w)["app.kubernetes.io/part-of"] == "secondnum"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_media_on_host_network_advertises_node_ip(overlay: str) -> None:
    media = find(rendered(overlay), "Deployment", "secondnum-media")
    spec = pod_spec(media)
    assert spec["hostNetwork"] is True
    assert spec["dnsPolicy"] == "ClusterFirstWithHostNet"
    env = {e["name"]: e for e in spec["containers"][0]["env"]}
    assert env["NODE_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.hostIP"
    assert env["SECONDNUM_MEDIA__RTP_HOST"]["value"] == "$(NODE_IP)"
    # Host ports clash: one media pod per node.
    terms = spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms[0]["topologyKey"] == "kubernetes.io/hostname"


def test_lab_is_single_replica_with_mongodb_replica_set() -> None:
    docs = rendered("lab")
    for hpa in of_kind(docs, "HorizontalPodAutoscaler"):
        assert hpa["spec"]["minReplicas"] == hpa["spec"]["maxReplicas"] == 1
    for w in workloads(docs):
        if pod_labels(w).get("app.kubernetes.io/name") == "secondnum" and "replicas" in w["spec"]:
            assert w["spec"]["replicas"] == 1
    mongo = find(docs, "StatefulSet", "mongodb")
    assert mongo["spec"]["replicas"] == 3
    svc = next(s for s in of_kind(docs, "Service") if s["metadata"]["name"] == mongo["spec"]["serviceName"])
    assert svc["spec"]["clusterIP"] == "None"
    job = find(docs, "Job", "mongodb-rs-init")
    script_cm = find(docs, "ConfigMap", "mongodb-rs-init")
    assert "rs.initiate" in script_cm["data"]["rs-init.js"]
    volume = next(v for v in pod_spec(job)["volumes"] if "configMap" in v)
    assert volume["configMap"]["name"] == script_cm["metadata"]["name"]


def test_production_scales_and_spreads() -> None:
    docs = rendered("production")
    hpa = {h["metadata"]["name"]: h["spec"] for h in of_kind(docs, "HorizontalPodAutoscaler")}
    assert hpa["secondnum-as"]["minReplicas"] >= 2 and hpa["secondnum-ocs"]["minReplicas"] >= 2
    for w in workloads(docs):
        comp = pod_labels(w).get("app.kubernetes.io/component")
        if comp in ("as", "ocs", "hss"):
            anti = pod_spec(w)["affinity"]["podAntiAffinity"]
            terms = anti["preferredDuringSchedulingIgnoredDuringExecution"]
            assert {t["podAffinityTerm"]["topologyKey"] for t in terms} == {
                "kubernetes.io/hostname", "topology.kubernetes.io/zone"}
            for t in terms:
                selector = t["podAffinityTerm"]["labelSelector"]["matchLabels"]
                assert selector["app.kubernetes.io/component"] == comp
    mdb = find(docs, "MongoDBCommunity", "secondnum-mongodb")
    assert mdb["spec"]["members"] == 3
    assert mdb["spec"]["users"][0]["connectionStringSecretName"] == "secondnum-mongo"
    labels = mdb["spec"]["statefulSet"]["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == "mongodb"  # what the NetworkPolicies select


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_mongodb_reachable_only_from_our_pods(overlay: str) -> None:
    docs = rendered(overlay)
    np = find(docs, "NetworkPolicy", "mongodb")
    assert np["spec"]["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "mongodb"}
    peers = [p for rule in np["spec"]["ingress"] for p in rule["from"]]
    assert peers == [{"podSelector": {"matchLabels": {"app.kubernetes.io/part-of": "secondnum"}}},
                     {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "mongodb"}}}]


# ---- each check catches the fault it is for ------------------------------------------------------

def _break(mutate: Callable[[list[Doc]], Any]) -> list[Doc]:
    docs = rendered("lab")
    mutate(docs)
    return docs


def _container(docs: list[Doc], kind: str, prefix: str) -> Doc:
    return next(containers(find(docs, kind, prefix), init=False))


def _spec(docs: list[Doc], kind: str, prefix: str) -> Doc:
    spec: Doc = find(docs, kind, prefix)["spec"]
    return spec


def _sip_from_pods(d: list[Doc]) -> None:
    _spec(d, "NetworkPolicy", "secondnum-internal")["ingress"][0]["ports"].append(
        {"port": "sip-udp", "protocol": "UDP"})


def _sip_anywhere(d: list[Doc]) -> None:
    _spec(d, "NetworkPolicy", "secondnum-as-sip-scscf")["ingress"][0].pop("from")


def _scscf_range_moved(d: list[Doc]) -> None:
    peer = _spec(d, "NetworkPolicy", "secondnum-as-sip-scscf")["ingress"][0]["from"][0]
    peer["ipBlock"]["cidr"] = "10.30.0.0/24"


def _no_init_limits(d: list[Doc]) -> None:
    pod_spec(find(d, "Deployment", "secondnum-media"))["initContainers"][0]["resources"].pop("limits")


Mutation = Callable[[list[Doc]], Any]
Check = Callable[[list[Doc]], list[str]]

BREAKAGES: list[tuple[str, Mutation, Check, str]] = [
    ("selector", lambda d: _spec(d, "Deployment", "secondnum-ocs")["selector"]["matchLabels"].update(
        {"app.kubernetes.io/component": "charging"}), check_workload_selectors, "does not match"),
    ("service-selector", lambda d: _spec(d, "Service", "secondnum-hss")["selector"].update(
        {"app.kubernetes.io/component": "hss-adapter"}), check_services, "matches no pod"),
    ("target-port", lambda d: _spec(d, "Service", "secondnum-ocs")["ports"][0].update(
        {"targetPort": "diam"}), check_services, "targetPort diam/TCP"),
    ("sip-protocol", lambda d: _spec(d, "Service", "secondnum-as")["ports"][0].update(
        {"protocol": "TCP", "targetPort": "sip-udp"}), check_services, "sip-udp/TCP"),
    ("probe-port", lambda d: _container(d, "StatefulSet", "secondnum-as")["readinessProbe"]["httpGet"].update(
        {"port": 8081}), check_probes, "readinessProbe"),
    ("probe-path", lambda d: _container(d, "Deployment", "secondnum-hss")["livenessProbe"]["httpGet"].update(
        {"path": "/healthz"}), check_probes, "/health/live"),
    ("grace", lambda d: pod_spec(find(d, "Deployment", "secondnum-media")).update(
        {"terminationGracePeriodSeconds": 30}), check_grace_period, "< drain_limit 30"),
    ("drain-env", lambda d: _container(d, "Deployment", "secondnum-ocs")["env"].append(
        {"name": "SECONDNUM_RUN__DRAIN_LIMIT", "value": "300"}), check_grace_period, "drain_limit 300"),
    ("resources", _no_init_limits, check_resources, "prompt-cache: resources.limits.cpu"),
    ("latest", lambda d: _container(d, "StatefulSet", "mongodb").update(
        {"image": "docker.io/library/mongo:latest"}), check_images, "latest"),
    ("untagged", lambda d: _container(d, "StatefulSet", "secondnum-as").update({"image": "secondnum"}),
        check_images, "no tag"),
    ("root-fs", lambda d: _container(d, "Deployment", "secondnum-ocs")["securityContext"].update(
        {"readOnlyRootFilesystem": False}), check_security, "readOnlyRootFilesystem"),
    ("caps", lambda d: _container(d, "Deployment", "secondnum-media")["securityContext"].update(
        {"capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN"]}}), check_security, "capabilities"),
    ("default-deny", lambda d: d.remove(find(d, "NetworkPolicy", "default-deny")), check_default_deny,
        "no default-deny"),
    ("pdb", lambda d: _spec(d, "PodDisruptionBudget", "secondnum-as")["selector"]["matchLabels"].update(
        {"app.kubernetes.io/component": "sip"}), check_pdbs, "matches no workload"),
    ("hpa-target", lambda d: _spec(d, "HorizontalPodAutoscaler", "secondnum-ocs")["scaleTargetRef"].update(
        {"name": "secondnum-charging"}), check_hpas, "does not exist"),
    ("hpa-replicas", lambda d: _spec(d, "StatefulSet", "secondnum-as").update({"replicas": 2}),
        check_hpas, "fights the HPA"),
    ("sip-from-pods", _sip_from_pods, check_sip_ingress, "not only from address ranges"),
    ("sip-anywhere", _sip_anywhere, check_sip_ingress, "anywhere"),
    ("trusted-scscf", _scscf_range_moved, check_trusted_scscf, "outside the S-CSCF"),
    ("missing-secret", lambda d: d.remove(find(d, "Secret", "mongodb-keyfile")), check_references,
        "mongodb-keyfile"),
]


@pytest.mark.parametrize(("label", "mutate", "check", "expected"), BREAKAGES, ids=[b[0] for b in BREAKAGES])
def test_check_catches(label: str, mutate: Mutation, check: Check, expected: str) -> None:
    problems = check(_break(mutate))
    assert any(expected in p for p in problems), problems
