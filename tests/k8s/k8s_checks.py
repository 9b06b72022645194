"""Render the kustomize overlays and check what the Kubernetes schemas cannot see.

``kubernetes-validate`` (run by ``k8s/validate.sh``) checks each object against its schema. These checks
look across objects: a Service whose selector matches no pod, a probe on a port the container does not
declare, a grace period shorter than the drain limit in the ConfigMap, a policy that lets SIP in from
anywhere. Each check returns a list of problems (empty = fine) so tests can assert both that the real
manifests pass and that a deliberately broken copy is caught.
"""

from __future__ import annotations

import ipaddress
import re
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if (p / "kustomization.yaml").exists())
KUBECTL = ROOT / ".venv" / "bin" / "kubectl"

Doc = dict[str, Any]

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job"}
CONFIG_PATH = "/etc/secondnum/secondnum.toml"
STOP_BUDGET = 16.0
"""Seconds after the drain: ``run_services`` waits drain_limit + 1 for the drain, then up to 15 s for stop."""
MARGIN = 5.0
SIP_PORTS = {5060, 5070}
TAG_RE = re.compile(r"^(?P<name>[^@]+?)(?::(?P<tag>[\w][\w.-]*))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$")


def render(target: str | Path) -> list[Doc]:
    """``kubectl kustomize`` of a directory under k8s/ (e.g. ``overlays/lab``), parsed."""
    path = Path(target) if Path(target).is_absolute() else K8S / target
    result = subprocess.run([str(KUBECTL), "kustomize", str(path)], capture_output=True, text=True,
                            timeout=120, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {path} failed: {result.stderr}")
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def name(doc: Doc) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"


def of_kind(docs: list[Doc], *kinds: str) -> list[Doc]:
    return [d for d in docs if d["kind"] in kinds]


def workloads(docs: list[Doc]) -> list[Doc]:
    return of_kind(docs, *WORKLOAD_KINDS)


def pod_spec(workload: Doc) -> Doc:
    spec: Doc = workload["spec"]["template"]["spec"]
    return spec


def pod_labels(workload: Doc) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"].get("metadata", {}).get("labels", {})
    return labels


def containers(workload: Doc, *, init: bool = True) -> Iterator[Doc]:
    spec = pod_spec(workload)
    yield from spec.get("containers", [])
    if init:
        yield from spec.get("initContainers", [])


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def label_selector_matches(selector: Doc, labels: dict[str, str]) -> bool:
    """A ``LabelSelector`` (matchLabels and matchExpressions) against pod labels; {} selects all."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if (op == "In" and labels.get(key) not in values) or (op == "NotIn" and labels.get(key) in values):
            return False
        if (op == "Exists" and key not in labels) or (op == "DoesNotExist" and key in labels):
            return False
    return True


def container_ports(workload: Doc) -> list[Doc]:
    return [p for c in containers(workload, init=False) for p in c.get("ports", [])]


def port_exists(workload: Doc, port: int | str, protocol: str = "TCP") -> bool:
    for p in container_ports(workload):
        if p.get("protocol", "TCP") != protocol:
            continue
        if (isinstance(port, str) and p.get("name") == port) or p["containerPort"] == port:
            return True
    return False


# ---- checks ---------------------------------------------------------------------------------------

def check_workload_selectors(docs: list[Doc]) -> list[str]:
    problems = []
    for w in workloads(docs):
        if w["kind"] == "Job":
            continue
        selector = w["spec"]["selector"].get("matchLabels", {})
        if not matches(selector, pod_labels(w)):
            problems.append(f"{name(w)}: selector {selector} does not match its pod labels {pod_labels(w)}")
    return problems


def check_services(docs: list[Doc]) -> list[str]:
    """Every Service selects pods, and every targetPort is a port of those pods (same protocol)."""
    problems = []
    for svc in of_kind(docs, "Service"):
        selector = svc["spec"].get("selector", {})
        selected = [w for w in workloads(docs) if matches(selector, pod_labels(w))]
        if not selected:
            problems.append(f"{name(svc)}: selector {selector} matches no pod template")
            continue
        for port in svc["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            protocol = port.get("protocol", "TCP")
            for w in selected:
                if not port_exists(w, target, protocol):
                    problems.append(f"{name(svc)}: targetPort {target}/{protocol} is not a port of {name(w)}")
    for sts in of_kind(docs, "StatefulSet"):
        service = sts["spec"]["serviceName"]
        governing = [s for s in of_kind(docs, "Service") if s["metadata"]["name"] == service]
        if not governing or governing[0]["spec"].get("clusterIP") != "None":
            problems.append(f"{name(sts)}: serviceName {service} is not a headless Service")
    return problems


def check_probes(docs: list[Doc]) -> list[str]:
    """Probe ports exist; secondnum containers probe /health/live and /health/ready on their http port."""
    problems = []
    for w in workloads(docs):
        for c in containers(w, init=False):
            for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
                probe = c.get(kind)
                if not probe:
                    continue
                handler = probe.get("httpGet") or probe.get("tcpSocket")
                if handler and not port_exists(w, handler["port"]):
                    problems.append(
                        f"{name(w)}/{c['name']}: {kind} port {handler['port']} is not a container port")
            if c["name"] != "secondnum":
                continue
            for kind, path in (("livenessProbe", "/health/live"), ("readinessProbe", "/health/ready")):
                http = (c.get(kind) or {}).get("httpGet")
                if not http or http.get("path") != path or http.get("port") != "http":
                    problems.append(f"{name(w)}: {kind} must be GET {path} on port 'http'")
    return problems


def config_document(docs: list[Doc], workload: Doc) -> dict[str, Any] | None:
    """The TOML a secondnum pod reads: the ConfigMap mounted at /etc/secondnum."""
    spec = pod_spec(workload)
    for c in spec.get("containers", []):
        for mount in c.get("volumeMounts", []):
            if CONFIG_PATH.startswith(mount["mountPath"].rstrip("/") + "/"):
                volume = next(v for v in spec.get("volumes", []) if v["name"] == mount["name"])
                cm_name = volume["configMap"]["name"]
                cm = next(d for d in of_kind(docs, "ConfigMap") if d["metadata"]["name"] == cm_name)
                return tomllib.loads(cm["data"][Path(CONFIG_PATH).name])
    return None


def drain_limit(docs: list[Doc], workload: Doc) -> float | None:
    """``[run] drain_limit`` as the pod sees it: TOML, overridden by SECONDNUM_RUN__DRAIN_LIMIT."""
    document = config_document(docs, workload)
    if document is None:
        return None
    value = float(document.get("run", {}).get("drain_limit", 30.0))
    for c in pod_spec(workload)["containers"]:
        for env in c.get("env", []):
            if env["name"] == "SECONDNUM_RUN__DRAIN_LIMIT" and "value" in env:
                value = float(env["value"])
    return value


def check_grace_period(docs: list[Doc]) -> list[str]:
    problems = []
    for w in workloads(docs):
        limit = drain_limit(docs, w)
        if limit is None:
            continue
        grace = pod_spec(w).get("terminationGracePeriodSeconds", 30)
        needed = limit + STOP_BUDGET + MARGIN
        if grace < needed:
            problems.append(f"{name(w)}: terminationGracePeriodSeconds {grace} < drain_limit {limit:g} "
                            f"+ stop {STOP_BUDGET:g} + margin {MARGIN:g}")
    return problems


def check_resources(docs: list[Doc]) -> list[str]:
    problems = []
    for w in workloads(docs):
        for c in containers(w):
            res = c.get("resources", {})
            for section in ("requests", "limits"):
                for key in ("cpu", "memory"):
                    if key not in res.get(section, {}):
                        problems.append(f"{name(w)}/{c['name']}: resources.{section}.{key} missing")
    return problems


def check_images(docs: list[Doc]) -> list[str]:
    problems = []
    for w in workloads(docs):
        for c in containers(w):
            m = TAG_RE.match(c["image"])
            if not m or not (m["tag"] or m["digest"]):
                problems.append(f"{name(w)}/{c['name']}: image {c['image']} has no tag or digest")
            elif m["tag"] == "latest":
                problems.append(f"{name(w)}/{c['name']}: image {c['image']} uses 'latest'")
            if "/" not in (m["name"] if m else ""):
                problems.append(f"{name(w)}/{c['name']}: image {c['image']} is not a registry path "
                                "(kustomize images: did not rewrite it)")
    return problems


def check_security(docs: list[Doc]) -> list[str]:
    problems = []
    for w in workloads(docs):
        pod_sc = pod_spec(w).get("securityContext", {})
        for c in containers(w):
            sc = c.get("securityContext", {})
            where = f"{name(w)}/{c['name']}"
            if not (sc.get("runAsNonRoot") or pod_sc.get("runAsNonRoot")):
                problems.append(f"{where}: runAsNonRoot not set")
            if sc.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: readOnlyRootFilesystem not true")
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: allowPrivilegeEscalation not false")
            caps = sc.get("capabilities", {})
            if "ALL" not in caps.get("drop", []) or caps.get("add"):
                problems.append(f"{where}: capabilities must drop ALL and add none")
            seccomp = sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}
            if seccomp.get("type") != "RuntimeDefault":
                problems.append(f"{where}: seccompProfile is not RuntimeDefault")
    return problems


def check_default_deny(docs: list[Doc]) -> list[str]:
    for np in of_kind(docs, "NetworkPolicy"):
        spec = np["spec"]
        if (spec.get("podSelector") == {} and set(spec.get("policyTypes", [])) == {"Ingress", "Egress"}
                and not spec.get("ingress") and not spec.get("egress")):
            return []
    return ["no default-deny NetworkPolicy (podSelector {}, Ingress+Egress, no rules)"]


def check_pdbs(docs: list[Doc]) -> list[str]:
    problems = []
    for pdb in of_kind(docs, "PodDisruptionBudget"):
        selector = pdb["spec"]["selector"]
        pods = [pod_labels(w) for w in workloads(docs) if w["kind"] != "Job"]
        if not any(label_selector_matches(selector, labels) for labels in pods):
            problems.append(f"{name(pdb)}: selector matches no workload's pods")
    return problems


def check_hpas(docs: list[Doc]) -> list[str]:
    problems = []
    for hpa in of_kind(docs, "HorizontalPodAutoscaler"):
        ref = hpa["spec"]["scaleTargetRef"]
        targets = [w for w in workloads(docs)
                   if w["kind"] == ref["kind"] and w["metadata"]["name"] == ref["name"]]
        if not targets:
            problems.append(f"{name(hpa)}: target {ref['kind']}/{ref['name']} does not exist")
        elif "replicas" in targets[0]["spec"]:
            problems.append(
                f"{name(hpa)}: target {ref['kind']}/{ref['name']} sets replicas, which fights the HPA")
        if hpa["spec"].get("minReplicas", 1) > hpa["spec"]["maxReplicas"]:
            problems.append(f"{name(hpa)}: minReplicas > maxReplicas")
        metrics = hpa["spec"].get("metrics", [])
        for t in targets:
            for m in metrics:
                if m["type"] == "Resource":
                    resource = m["resource"]["name"]
                    for c in containers(t, init=False):
                        if resource not in c.get("resources", {}).get("requests", {}):
                            problems.append(f"{name(hpa)}: {name(t)}/{c['name']} has no {resource} request")
    return problems


def _rules_admitting(docs: list[Doc], workload: Doc, port: int, protocol: str) -> list[Doc]:
    """Ingress rules of NetworkPolicies selecting ``workload``'s pods that open ``port``/``protocol``."""
    named = {p.get("name") for p in container_ports(workload)
             if p["containerPort"] == port and p.get("protocol", "TCP") == protocol}
    found = []
    for np in of_kind(docs, "NetworkPolicy"):
        if not label_selector_matches(np["spec"].get("podSelector", {}), pod_labels(workload)):
            continue
        for rule in np["spec"].get("ingress", []):
            ports = rule.get("ports")
            if ports is None or any(p.get("protocol", "TCP") == protocol and (p.get("port") is None
                                    or p.get("port") == port or p.get("port") in named) for p in ports):
                found.append(rule)
    return found


def check_sip_ingress(docs: list[Doc]) -> list[str]:
    """SIP reaches the AS only from address ranges (S-CSCF, media nodes), never from any pod or anywhere."""
    problems = []
    for w in workloads(docs):
        if pod_labels(w).get("app.kubernetes.io/component") != "as":
            continue
        for protocol in ("UDP", "TCP"):
            rules = _rules_admitting(docs, w, 5060, protocol)
            if not rules:
                problems.append(f"{name(w)}: no NetworkPolicy admits SIP 5060/{protocol}")
            for rule in rules:
                peers = rule.get("from")
                if not peers or any(set(p) != {"ipBlock"} for p in peers):
                    problems.append(f"{name(w)}: SIP 5060/{protocol} admitted from {peers or 'anywhere'}, "
                                    "not only from address ranges")
                elif any(ipaddress.ip_network(p["ipBlock"]["cidr"]).prefixlen == 0 for p in peers):
                    problems.append(f"{name(w)}: SIP admitted from 0.0.0.0/0")
    return problems


def np_cidrs(docs: list[Doc], policy: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    np = next(d for d in of_kind(docs, "NetworkPolicy") if d["metadata"]["name"] == policy)
    return [ipaddress.ip_network(peer["ipBlock"]["cidr"]) for rule in np["spec"].get("ingress", [])
            for peer in rule.get("from", []) if "ipBlock" in peer]


def check_trusted_scscf(docs: list[Doc]) -> list[str]:
    """The AS trusts ([as] trusted_scscf) only addresses the NetworkPolicy lets in: one range, two places."""
    problems = []
    allowed = np_cidrs(docs, "secondnum-as-sip-scscf")
    for w in workloads(docs):
        if pod_labels(w).get("app.kubernetes.io/component") != "as":
            continue
        document = config_document(docs, w) or {}
        for entry in document.get("as", {}).get("trusted_scscf", []):
            net = ipaddress.ip_network(entry, strict=False)
            if not any(net.version == a.version and net.subnet_of(a) for a in allowed):  # type: ignore[arg-type]
                problems.append(f"[as] trusted_scscf {entry} is outside the S-CSCF NetworkPolicy ranges "
                                f"{[str(a) for a in allowed]}")
    return problems


def check_references(docs: list[Doc], external: frozenset[str] = frozenset()) -> list[str]:
    """ConfigMaps and Secrets the pods use exist in the render, or are listed as created outside it."""
    problems = []
    present = {(d["kind"], d["metadata"]["name"]) for d in of_kind(docs, "ConfigMap", "Secret")}
    for w in workloads(docs):
        wanted: set[tuple[str, str]] = set()
        for v in pod_spec(w).get("volumes", []):
            if "configMap" in v:
                wanted.add(("ConfigMap", v["configMap"]["name"]))
            if "secret" in v:
                wanted.add(("Secret", v["secret"]["secretName"]))
        for c in containers(w):
            for env in c.get("env", []):
                ref = env.get("valueFrom", {})
                if "secretKeyRef" in ref:
                    wanted.add(("Secret", ref["secretKeyRef"]["name"]))
                if "configMapKeyRef" in ref:
                    wanted.add(("ConfigMap", ref["configMapKeyRef"]["name"]))
        for kind, ref_name in sorted(wanted - present):
            if ref_name not in external:
                problems.append(
                    f"{name(w)}: {kind} {ref_name} is neither rendered nor documented as external")
    return problems


ALL_CHECKS = (check_workload_selectors, check_services, check_probes, check_grace_period, check_resources,
              check_images, check_security, check_default_deny, check_pdbs, check_hpas, check_sip_ingress,
              check_trusted_scscf)


def container_env(workload: Doc, container: Doc, secrets: dict[str, str]) -> dict[str, str]:
    """The environment a container would see, with field references given example values and
    ``$(VAR)`` expanded the way the kubelet does."""
    field_values = {"metadata.name": f"{workload['metadata']['name']}-0", "metadata.namespace": "secondnum",
                    "status.podIP": "10.244.1.7", "status.hostIP": "10.0.0.5"}
    env: dict[str, str] = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env.get(m[1], m[0]), item["value"])
        else:
            ref = item["valueFrom"]
            if "fieldRef" in ref:
                env[item["name"]] = field_values[ref["fieldRef"]["fieldPath"]]
            elif "secretKeyRef" in ref:
                env[item["name"]] = secrets.get(ref["secretKeyRef"]["key"], "example-secret")
    return env
