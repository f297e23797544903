"""What agenthost relies on in each rendered Kubernetes overlay, beyond what
the schemas and checkov check: run by scripts/k8s-check.sh on the output of
`kubectl kustomize`. Exits 1 naming every property that does not hold."""

import re
import sys
import tomllib

import yaml

NAMESPACED = {"Deployment", "Service", "ServiceAccount", "ConfigMap", "NetworkPolicy",
              "PodDisruptionBudget", "HorizontalPodAutoscaler", "ScaledObject", "TriggerAuthentication"}


def check(path):
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    problems = []

    def need(ok, what):
        if not ok:
            problems.append(what)

    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    namespaces = {d["metadata"].get("namespace") for d in docs if d["kind"] in NAMESPACED}
    need(len(namespaces) == 1 and None not in namespaces, f"one namespace for everything, got {namespaces}")

    deployments = by_kind.get("Deployment", [])
    need(len(deployments) == 1, "one Deployment")
    if not deployments:
        return problems
    dep = deployments[0]
    pod = dep["spec"]["template"]["spec"]
    psc = pod.get("securityContext", {})
    need(psc.get("runAsNonRoot") is True, "pod runAsNonRoot")
    need(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", "pod seccomp RuntimeDefault")
    need(pod.get("automountServiceAccountToken") is False, "no Kubernetes API token in the pod")
    (c,) = pod["containers"]
    sc = c.get("securityContext", {})
    need(sc.get("readOnlyRootFilesystem") is True, "read-only root filesystem")
    need(sc.get("allowPrivilegeEscalation") is False, "no privilege escalation")
    need(sc.get("privileged") is not True, "not privileged")
    need("ALL" in sc.get("capabilities", {}).get("drop", []), "capabilities: drop ALL")
    need(re.search(r"@sha256:[0-9a-f]{64}$", c["image"]) is not None, f"image pinned by digest: {c['image']}")
    res = c.get("resources", {})
    for kind in ("requests", "limits"):
        for r in ("cpu", "memory"):
            need(r in res.get(kind, {}), f"resources.{kind}.{r}")
    need(c.get("readinessProbe", {}).get("httpGet", {}).get("path") == "/readyz", "readiness on /readyz")
    need(c.get("livenessProbe", {}).get("httpGet", {}).get("path") == "/healthz", "liveness on /healthz")

    # Only the data directory and /tmp are writable.
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for m in c.get("volumeMounts", []):
        if not m.get("readOnly"):
            need(m["mountPath"] in ("/var/lib/agenthost", "/tmp"), f"writable mount {m['mountPath']}")
            need("emptyDir" in volumes.get(m["name"], {}) or "persistentVolumeClaim" in volumes.get(m["name"], {}),
                 f"writable mount {m['mountPath']} is pod storage")

    # The stopping time covers preStop + the host's shutdown delay + drain.
    env = {e["name"]: e.get("value") for e in c.get("env", [])}
    config_name = volumes.get("config", {}).get("configMap", {}).get("name")
    maps = [d for d in by_kind.get("ConfigMap", []) if d["metadata"]["name"] == config_name]
    need(len(maps) == 1, f"the config volume's ConfigMap {config_name} is rendered")
    need(env.get("AGENTHOST_CONFIG") == "/etc/agenthost", "AGENTHOST_CONFIG is the config mount")
    if maps:
        data = maps[0]["data"]
        need("host.toml" in data and any(k.startswith("tenant-") for k in data), "host.toml and tenant files")
        server = tomllib.loads(data["host.toml"]).get("server", {})
        pre_stop = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
        needed = pre_stop + (server.get("shutdown_delay_ms", 0) + server.get("drain_timeout_ms", 20000)) / 1000 + 3
        grace = pod.get("terminationGracePeriodSeconds", 30)
        need(grace >= needed, f"terminationGracePeriodSeconds {grace} < preStop + delay + drain + 3 s = {needed}")
        need(pre_stop > 0, "a preStop pause so endpoints drop the pod before SIGTERM")

    # IRSA (EKS) / STS (ROSA) identity.
    sas = {d["metadata"]["name"]: d for d in by_kind.get("ServiceAccount", [])}
    sa = sas.get(pod.get("serviceAccountName"), {})
    arn = sa.get("metadata", {}).get("annotations", {}).get("eks.amazonaws.com/role-arn", "")
    need(re.fullmatch(r"arn:aws:iam::\d{12}:role/[\w+=,.@-]+", arn) is not None, f"the pod's IAM role: {arn!r}")

    # Default deny, and never the instance metadata service.
    policies = by_kind.get("NetworkPolicy", [])
    deny = [p for p in policies if p["spec"].get("podSelector") == {} and
            set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"} and
            not p["spec"].get("ingress") and not p["spec"].get("egress")]
    need(len(deny) == 1, "a default-deny NetworkPolicy for the namespace")
    for p in policies:
        for rule in p["spec"].get("egress", []):
            for peer in rule.get("to", []):
                block = peer.get("ipBlock")
                if block and block["cidr"] == "0.0.0.0/0":
                    need("169.254.169.254/32" in block.get("except", []), f"{p['metadata']['name']}: egress to IMDS")
                    need({pt.get("port") for pt in rule.get("ports", [])} == {443}, "open egress is HTTPS only")

    selector = dep["spec"]["selector"]["matchLabels"]
    pdbs = [d for d in by_kind.get("PodDisruptionBudget", []) if d["spec"]["selector"]["matchLabels"] == selector]
    need(len(pdbs) == 1, "a PodDisruptionBudget for the pods")

    # Scaled by exactly one of: an HPA on CPU, or a KEDA ScaledObject on SQS.
    hpas = [d for d in by_kind.get("HorizontalPodAutoscaler", []) if d["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"]]
    scaled = by_kind.get("ScaledObject", [])
    need(len(hpas) + len(scaled) == 1, f"one autoscaler, got {len(hpas)} HPA and {len(scaled)} ScaledObject")
    auths = {d["metadata"]["name"] for d in by_kind.get("TriggerAuthentication", [])}
    for so in scaled:
        need(so["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"], "ScaledObject targets the Deployment")
        sqs = [t for t in so["spec"].get("triggers", []) if t["type"] == "aws-sqs-queue"]
        need(len(sqs) == 1, "ScaledObject scales on the SQS queue")
        for t in sqs:
            need(t.get("authenticationRef", {}).get("name") in auths, "the SQS trigger's TriggerAuthentication exists")
            need(t["metadata"].get("queueURL", "").startswith("https://sqs."), "the SQS trigger names a queue URL")
    return problems


def main(paths):
    failed = False
    for path in paths:
        problems = check(path)
        for p in problems:
            print(f"{path}: {p}", file=sys.stderr)
        failed |= bool(problems)
        print(f"{path}: {'FAILED' if problems else 'ok'}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main(sys.argv[1:])
