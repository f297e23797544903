#!/usr/bin/env bash
# Renders every Kubernetes overlay under deploy/k8s with `kubectl kustomize`,
# validates each against the Kubernetes schemas (kubernetes-validate
# --strict), checks the properties agenthost relies on
# (scripts/k8s_check.py), and scans them with checkov (skips, each
# justified, in deploy/k8s/.checkov.yaml). Each validator is first shown a
# broken manifest, to prove it is awake. Sourced by scripts/test, or run alone.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n==> %s\n' "$*"; }

K8S_VERSION="${AGENTHOST_K8S_VERSION:-1.33.0}"   # the oldest EKS/ROSA minor we support
dir="${AGENTHOST_SERVICES_DIR:-${CARGO_TARGET_DIR:-$PWD/target}/test-services}"
venv="$dir/k8s-venv"
out="$dir/k8s-rendered"

if ! command -v kubectl >/dev/null 2>&1; then
    echo "error: kubectl is not installed; it renders the overlays (kubectl kustomize)." >&2
    echo "       Debian: apt-get install kubernetes-client, or the kubectl release binary." >&2
    exit 1
fi
if [ ! -x "$venv/bin/checkov" ] || [ ! -x "$venv/bin/kubernetes-validate" ]; then
    step "Installing kubernetes-validate and checkov (PyPI) into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip
    "$venv/bin/pip" install --quiet "kubernetes-validate==1.37.0" "checkov==3.3.30"   # pinned: a new release brings new checks
fi

rm -rf "$out" && mkdir -p "$out"
overlays=$(cd deploy/k8s/overlays && ls -d */ | tr -d /)
for overlay in $overlays; do
    step "Rendering deploy/k8s/overlays/$overlay (kubectl kustomize)"
    kubectl kustomize "deploy/k8s/overlays/$overlay" > "$out/$overlay.yaml"
done

step "Validating against the Kubernetes $K8S_VERSION schemas (kubernetes-validate --strict)"
# Awake: a misspelt field must fail.
sed 's/readOnlyRootFilesystem: true/readOnlyRootFilesytem: true/' "$out/prod.yaml" > "$dir/k8s-broken.yaml"
if "$venv/bin/kubernetes-validate" --strict --quiet -k "$K8S_VERSION" "$dir/k8s-broken.yaml" >/dev/null 2>&1; then
    echo "error: kubernetes-validate accepted a misspelt field; it is not checking" >&2
    exit 1
fi
for overlay in $overlays; do
    # KEDA's kinds have no schema here: they pass with a warning, and
    # scripts/k8s_check.py checks their shape.
    "$venv/bin/kubernetes-validate" --strict --quiet -k "$K8S_VERSION" "$out/$overlay.yaml"
done

step "Checking what agenthost relies on (scripts/k8s_check.py)"
"$venv/bin/python" scripts/k8s_check.py "$out"/*.yaml

step "Scanning with checkov (skips justified in deploy/k8s/.checkov.yaml)"
sed 's/allowPrivilegeEscalation: false/allowPrivilegeEscalation: true/' "$out/prod.yaml" > "$dir/k8s-broken.yaml"
if "$venv/bin/checkov" -f "$dir/k8s-broken.yaml" --framework kubernetes --quiet --compact --skip-download \
    --config-file deploy/k8s/.checkov.yaml >/dev/null 2>&1; then
    echo "error: checkov passed a container that may escalate privileges; it is not checking" >&2
    exit 1
fi
"$venv/bin/checkov" -d "$out" --framework kubernetes --quiet --compact --skip-download \
    --config-file deploy/k8s/.checkov.yaml
echo "kubernetes: $(echo $overlays | wc -w) overlays rendered, validated and scanned"
