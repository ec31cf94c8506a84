"""Parses the Kubernetes manifests and the Envoy config under clients/ and checks what
mcp-health relies on: kinds, native gRPC probes (port and service), groups that exist in
the ConfigMap, backends with DNS discovery that name a headless Service of the manifests,
and Envoy's gRPC health check. Validates every manifest under clients/kubernetes against
the Kubernetes OpenAPI schemas (kubernetes-validate, strict: unknown fields are errors) for
the oldest and newest Kubernetes versions clients/kubernetes/README.md documents. Writes the
ConfigMap's groups.yaml to the path given as the second argument, for a dry-run apply
against a live daemon. Exits 1 with one line per problem."""

from __future__ import annotations

import pathlib
import sys
import urllib.parse

import kubernetes_validate
import yaml

problems: list[str] = []

# The oldest and newest Kubernetes versions clients/kubernetes/README.md documents: 1.29 is
# the first with native sidecars (restartPolicy: Always init containers) on by default.
K8S_VERSIONS = ("1.29", "1.37")


def need(cond: bool, what: str) -> None:
    if not cond:
        problems.append(what)


def containers(pod_spec: dict) -> list[dict]:
    return list(pod_spec.get("containers", [])) + list(pod_spec.get("initContainers", []))


def grpc_probe(c: dict, kind: str) -> dict | None:
    probe = c.get(kind)
    return probe.get("grpc") if isinstance(probe, dict) else None


def check_schemas(k8s: pathlib.Path) -> int:
    """Every document of every manifest under k8s, against the real OpenAPI schemas of each
    version in K8S_VERSIONS, in strict mode. Returns the number of documents checked."""
    shipped = set(kubernetes_validate.utils.all_versions())
    readme = (k8s / "README.md").read_text()
    need(f"Kubernetes {K8S_VERSIONS[0]} to {K8S_VERSIONS[1]}" in readme, f"clients/kubernetes/README.md should say the manifests are for Kubernetes {K8S_VERSIONS[0]} to {K8S_VERSIONS[1]}")
    count = 0
    for f in sorted(k8s.rglob("*.yaml")):
        for i, d in enumerate(yaml.safe_load_all(f.read_text())):
            if d is None:
                continue
            count += 1
            for version in K8S_VERSIONS:
                where = f"{f.relative_to(k8s)} document {i + 1} ({d.get('kind')} {d.get('metadata', {}).get('name')}), Kubernetes {version}"
                if not any(v.startswith(version + ".") for v in shipped):
                    need(False, f"kubernetes-validate {kubernetes_validate.__version__} has no schemas for Kubernetes {version}")
                    continue
                try:
                    kubernetes_validate.validate(d, version, strict=True)
                except kubernetes_validate.ValidationError as e:
                    path = ".".join(str(p) for p in e.path) or "(document)"
                    need(False, f"{where}: {path}: {e.message}")
                except (kubernetes_validate.SchemaNotFoundError, kubernetes_validate.VersionNotSupportedError) as e:
                    need(False, f"{where}: {e.message}")
    return count


def service_of(host: str) -> tuple[str, str] | None:
    """(name, namespace) of a Service's cluster DNS name: <svc>.<ns>.svc[.cluster.local], or
    for an SRV name _<port>._<proto>.<svc>.<ns>.svc[...]; None for any other name."""
    labels = host.rstrip(".").split(".")
    while labels and labels[0].startswith("_"):
        labels = labels[1:]
    if len(labels) >= 3 and labels[2] == "svc" and labels[3:] in ([], ["cluster", "local"]):
        return labels[0], labels[1]
    return None


def check_discovery(config: dict, docs: list[tuple[str, dict]]) -> int:
    """A backend with discovery.dns that names a Service of these manifests must name a
    headless one (a ClusterIP Service resolves to one virtual IP, so every probe would reach
    one pod chosen by kube-proxy), on a port the Service has, selecting a Deployment's pods.
    Returns the number of backends with discovery."""
    services = {(d["metadata"]["name"], d["metadata"].get("namespace", "default")): d for _, d in docs if d["kind"] == "Service"}
    deployments = [d for _, d in docs if d["kind"] == "Deployment"]
    count = 0
    for g in config.get("groups", []):
        for b in g.get("backends", []):
            dns = (b.get("discovery") or {}).get("dns")
            if dns is None:
                continue
            count += 1
            where = f"group {g.get('name')} backend {b.get('name')}"
            url = urllib.parse.urlsplit(b.get("url", ""))
            srv = dns.get("srv")
            name = srv or url.hostname or ""
            svc_key = service_of(name)
            if svc_key is None or svc_key not in services:
                need(svc_key is None, f"{where}: discovery names Service {svc_key[1]}/{svc_key[0]}, which these manifests do not define" if svc_key else "")
                continue
            svc = services[svc_key]["spec"]
            need(svc.get("clusterIP") == "None", f"{where}: discovery through Service {svc_key[1]}/{svc_key[0]}, which is not headless (clusterIP: None): its name resolves to one virtual IP, so the probes would see one pod")
            ports = svc.get("ports", [])
            if srv:
                port_name = srv.split(".")[0].lstrip("_")
                need(any(p.get("name") == port_name for p in ports), f"{where}: SRV name {srv} needs a Service port named {port_name}")
            else:
                port = url.port or {"http": 80, "https": 443}.get(url.scheme)
                need(any(p.get("port") == port for p in ports), f"{where}: URL port {port} is not a port of Service {svc_key[1]}/{svc_key[0]}")
            selector = svc.get("selector") or {}
            pods = [d for d in deployments if d["metadata"].get("namespace", "default") == svc_key[1] and selector and selector.items() <= d["spec"]["template"]["metadata"].get("labels", {}).items()]
            need(bool(pods), f"{where}: Service {svc_key[1]}/{svc_key[0]} selects no Deployment's pods")
            for d in pods:
                cports = {p.get("name"): p.get("containerPort") for c in d["spec"]["template"]["spec"].get("containers", []) for p in c.get("ports", [])}
                for p in ports:
                    target = p.get("targetPort", p.get("port"))
                    need(target in cports or target in cports.values(), f"{where}: Service port {p.get('name')} targets {target!r}, which Deployment {d['metadata']['name']} does not expose")
    return count


def check_cluster_example(path: pathlib.Path) -> None:
    """The cluster example: 3 replicas on etcd, a PodDisruptionBudget over the same pods."""
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    dep = next((d for d in docs if d["kind"] == "Deployment"), None)
    pdb = next((d for d in docs if d["kind"] == "PodDisruptionBudget"), None)
    need(dep is not None and pdb is not None, f"{path.name}: needs a Deployment and a PodDisruptionBudget")
    if not (dep and pdb):
        return
    need(dep["spec"].get("replicas") == 3, f"{path.name}: the cluster example runs 3 replicas")
    c = next((c for c in containers(dep["spec"]["template"]["spec"]) if c["name"] == "mcp-healthd"), {})
    args = c.get("args", [])
    endpoints = [a.split("=", 1)[1] for a in args if a.startswith("--etcd-endpoints=")]
    need(len(endpoints) == 1 and len(endpoints[0].split(",")) >= 3, f"{path.name}: --etcd-endpoints should list the etcd members")
    need(any(a.startswith("--etcd-prefix=/") for a in args), f"{path.name}: set --etcd-prefix")
    need(not any(a.startswith("--data-dir") for a in args), f"{path.name}: --data-dir and --etcd-endpoints exclude each other")
    volumes = dep["spec"]["template"]["spec"].get("volumes", [])
    need(any(v.get("configMap", {}).get("name") == "mcp-health-groups" for v in volumes), f"{path.name}: the cluster reads the one groups ConfigMap (../configmap.yaml), discovered backends included")
    need(not any(d["kind"] == "ConfigMap" for d in docs), f"{path.name}: no second groups ConfigMap; the cluster serves DNS discovery")
    labels = dep["spec"]["template"]["metadata"]["labels"]
    need(pdb["spec"].get("selector", {}).get("matchLabels", {}).items() <= labels.items(), f"{path.name}: the PodDisruptionBudget must select the replicas")
    need(pdb["spec"].get("minAvailable") == 2, f"{path.name}: keep 2 of 3 replicas through voluntary disruptions")


def main(clients: pathlib.Path, groups_out: pathlib.Path) -> int:
    k8s = clients / "kubernetes"
    docs = []
    for f in sorted(k8s.glob("*.yaml")):
        for d in yaml.safe_load_all(f.read_text()):
            if d is not None:
                need(isinstance(d, dict) and "apiVersion" in d and "kind" in d and "name" in d.get("metadata", {}), f"{f.name}: document without apiVersion/kind/metadata.name")
                docs.append((f.name, d))
    kinds = {(d["kind"], d["metadata"]["name"]) for _, d in docs}
    for want in [("Namespace", "mcp-health"), ("ConfigMap", "mcp-health-groups"), ("Deployment", "mcp-healthd"), ("Service", "mcp-healthd")]:
        need(want in kinds, f"missing {want[0]} {want[1]}")

    cm = next((d for _, d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "mcp-health-groups"), {})
    groups_text = cm.get("data", {}).get("groups.yaml", "")
    config = yaml.safe_load(groups_text) or {}
    groups = {g.get("name") for g in config.get("groups", [])}
    need(len(groups) >= 2, f"ConfigMap groups.yaml should define groups, has {groups}")
    groups_out.write_text(groups_text)
    discovered = check_discovery(config, docs)
    need(discovered >= 1, "the ConfigMap should have a backend with discovery.dns through a headless Service (mcp-server.yaml)")

    daemon = next((d for _, d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "mcp-healthd"), None)
    if daemon:
        pod = daemon["spec"]["template"]["spec"]
        c = next((c for c in containers(pod) if c["name"] == "mcp-healthd"), {})
        live = grpc_probe(c, "livenessProbe")
        need(live == {"port": 50051, "service": ""}, f"mcp-healthd livenessProbe should be grpc {{port: 50051, service: ''}}, is {live}")
        ready = grpc_probe(c, "readinessProbe")
        need(bool(ready) and ready.get("port") == 50051, f"mcp-healthd readinessProbe should be a grpc probe on 50051, is {ready}")
        args = " ".join(c.get("args", []))
        need("--config=/etc/mcp-health/groups.yaml" in args, "mcp-healthd should read the ConfigMap's groups.yaml")
        need(any(v.get("configMap", {}).get("name") == "mcp-health-groups" for v in pod.get("volumes", [])), "mcp-healthd should mount the ConfigMap")
        svc = next((d for _, d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "mcp-healthd"), {})
        need(50051 in [p.get("port") for p in svc.get("spec", {}).get("ports", [])], "Service mcp-healthd should expose 50051")

    gated = set()
    for name, d in docs:
        if d["kind"] != "Deployment" or d["metadata"]["name"] == "mcp-healthd":
            continue
        pod = d["spec"]["template"]["spec"]
        for c in pod.get("containers", []):
            probe = grpc_probe(c, "readinessProbe")
            if probe:
                need(isinstance(probe.get("port"), int), f"{name}: {d['metadata']['name']}/{c['name']} readiness grpc.port must be an integer")
                need(probe.get("service") in groups, f"{name}: {d['metadata']['name']} gates on group {probe.get('service')!r}, not in the ConfigMap {sorted(groups)}")
                gated.add(probe.get("service"))
                sidecars = [s for s in pod.get("initContainers", []) if s.get("restartPolicy") == "Always"]
                need(any(f"--listen=0.0.0.0:{probe.get('port')}" in s.get("args", []) for s in sidecars), f"{name}: {d['metadata']['name']} probes port {probe.get('port')} but no sidecar listens there on 0.0.0.0")
    need(gated == groups, f"every group should gate a gateway; gated {sorted(gated)} of {sorted(groups)}")

    check_cluster_example(k8s / "cluster" / "mcp-healthd-cluster.yaml")
    validated = check_schemas(k8s)

    envoy = yaml.safe_load((clients / "envoy" / "envoy.yaml").read_text())
    clusters = {c["name"]: c for c in envoy["static_resources"]["clusters"]}
    checked = False
    for c in clusters.values():
        for hc in c.get("health_checks", []):
            g = hc.get("grpc_health_check")
            if g is None:
                continue
            checked = True
            need(g.get("service_name") in groups, f"envoy cluster {c['name']}: service_name {g.get('service_name')!r} is not a group")
            for field in ("timeout", "interval", "unhealthy_threshold", "healthy_threshold"):
                need(field in hc, f"envoy cluster {c['name']}: health check needs {field}")
            opts = c.get("typed_extension_protocol_options", {}).get("envoy.extensions.upstreams.http.v3.HttpProtocolOptions", {})
            need("http2_protocol_options" in str(opts), f"envoy cluster {c['name']}: gRPC health checks need HTTP/2 protocol options")
            ports = [e.get("endpoint", {}).get("health_check_config", {}).get("port_value") for l in c["load_assignment"]["endpoints"] for e in l["lb_endpoints"]]
            need(ports and all(p == 50051 for p in ports), f"envoy cluster {c['name']}: endpoints should be checked on 50051, are {ports}")
    need(checked, "envoy.yaml has no cluster with grpc_health_check")
    for listener in envoy["static_resources"]["listeners"]:
        for chain in listener["filter_chains"]:
            for flt in chain["filters"]:
                need(flt["typed_config"].get("@type", "").startswith("type.googleapis.com/envoy."), f"envoy filter {flt['name']} needs a typed_config @type")
                for vh in flt["typed_config"].get("route_config", {}).get("virtual_hosts", []):
                    for r in vh["routes"]:
                        need(r["route"]["cluster"] in clusters, f"envoy route to unknown cluster {r['route']['cluster']}")

    for p in problems:
        print(f"manifest problem: {p}")
    print(f"manifests: {len(docs)} Kubernetes documents ({discovered} backend(s) with DNS discovery), {validated} validated strictly against Kubernetes {' and '.join(K8S_VERSIONS)} (kubernetes-validate {kubernetes_validate.__version__}), envoy.yaml with {len(clusters)} cluster(s): {'FAILED' if problems else 'ok'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])))
