"""The transformer's /metrics is scraped in-cluster and never reachable through the public Knative ingress.

Why an undeclared port is private (Knative Serving source): the webhook allows at most one declared port
(pkg/apis/serving/k8s_validation.go, "more than one container port is set") and checks only declared ports;
the queue-proxy forwards to 127.0.0.1:USER_PORT and nowhere else (pkg/queue/sharedmain/main.go, buildProxyHandler);
the revision's Kubernetes Services target only the queue-proxy's 8012/8013/8112
(pkg/reconciler/serverlessservice/resources/services.go). A port the transformer listens on but does not declare
is therefore reachable only at the pod IP. Prometheus Operator's `port`/`portNumber`/`targetPort` all keep only
discovered (declared) ports, so the PodMonitor reaches the undeclared port by rewriting `__address__`
(pkg/prometheus/promcfg.go; the `portNumber` API doc says so). What the ingress serves can only be seen on a live
cluster: README, "Deploying", has the commands.
"""

from __future__ import annotations

import re

import pytest

from tests.deploy.rendering import (
    OVERLAYS,
    isvc_of,
    one,
    parse_transformer_args,
    rendered,
    transformer_container,
)

# Ports the queue-proxy (same network namespace) listens on: pkg/networking/constants.go and pprof's 8008.
QUEUE_PROXY_PORTS = {8008, 8012, 8013, 8022, 8112, 9090, 9091}
PORT_SELECTORS = ("port", "portNumber", "targetPort")


def scrape_port(endpoint: dict) -> int | None:
    """The port the endpoint's `__address__` relabeling points at (`<pod ip>:<port>`)."""
    for step in endpoint.get("relabelings", []):
        if step.get("targetLabel") == "__address__":
            found = re.fullmatch(r"\$\{?1\}?:(\d+)", str(step.get("replacement", "")))
            return int(found.group(1)) if found else None
    return None


def keeps(endpoint: dict, container: str, port: int | None) -> bool:
    """Whether the endpoint's first `keep` lets a discovered (container, port) target through (anchored regex)."""
    step = next(s for s in endpoint["relabelings"] if s.get("action") == "keep")
    value = ";".join([container, "" if port is None else str(port)])
    return re.fullmatch(step["regex"], value) is not None


def metrics_exposure_problems(isvc: dict, podmonitor: dict) -> list[str]:
    container = transformer_container(isvc)
    args = parse_transformer_args(container)
    problems = []
    if args.metrics_port is None:
        return ["transformer: no --metrics_port, /metrics is served on the public API port"]
    declared = {
        p["containerPort"] for c in isvc["spec"]["transformer"]["containers"] for p in c.get("ports", [])
    }
    if args.metrics_port in declared:
        problems.append(
            f"metrics port {args.metrics_port} is a declared containerPort (the public port on Knative)"
        )
    if args.metrics_port in {args.http_port, args.grpc_port}:
        problems.append(f"metrics port {args.metrics_port} is also an API port")
    if args.metrics_port in QUEUE_PROXY_PORTS:
        problems.append(f"metrics port {args.metrics_port} collides with the queue-proxy")
    (endpoint,) = podmonitor["spec"]["podMetricsEndpoints"]
    if any(key in endpoint for key in PORT_SELECTORS):
        problems.append("PodMonitor selects a declared port: an undeclared metrics port is never discovered")
    if scrape_port(endpoint) != args.metrics_port:
        problems.append(
            f"PodMonitor scrapes port {scrape_port(endpoint)}, the transformer serves metrics on "
            f"{args.metrics_port}"
        )
    if not (
        keeps(endpoint, "kserve-container", args.http_port) and keeps(endpoint, "kserve-container", None)
    ):
        problems.append("PodMonitor drops the transformer container's discovered target")
    if keeps(endpoint, "queue-proxy", 8012):
        problems.append("PodMonitor keeps queue-proxy targets: each pod would be scraped more than once")
    return problems


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_metrics_port_is_undeclared_and_is_what_the_pod_monitor_scrapes(overlay):
    podmonitor = one(rendered(overlay), "PodMonitor", "lead-scoring-transformer")
    assert metrics_exposure_problems(isvc_of(overlay), podmonitor) == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_one_declared_port_is_the_public_api_port(overlay):
    # The queue-proxy's USER_PORT is the declared port: it must be the API, never the metrics.
    isvc = isvc_of(overlay)
    container = transformer_container(isvc)
    args = parse_transformer_args(container)
    assert [p["containerPort"] for p in container["ports"]] == [args.http_port]
    assert args.metrics_port != args.http_port


def test_checker_flags_a_declared_a_missing_and_a_mismatched_metrics_port():
    def isvc(args: list[str], ports: list[int]) -> dict:
        container = {"name": "kserve-container", "args": args, "ports": [{"containerPort": p} for p in ports]}
        return {"spec": {"transformer": {"containers": [container]}}}

    def monitor(port: int, **extra) -> dict:
        relabelings = [
            {"sourceLabels": ["a", "b"], "regex": "kserve-container;(8080)?", "action": "keep"},
            {"targetLabel": "__address__", "replacement": f"$1:{port}"},
        ]
        return {"spec": {"podMetricsEndpoints": [{"path": "/metrics", "relabelings": relabelings, **extra}]}}

    good = ["--http_port=8080", "--metrics_port=9095"]
    assert metrics_exposure_problems(isvc(good, [8080]), monitor(9095)) == []
    assert metrics_exposure_problems(isvc(["--http_port=8080"], [8080]), monitor(8080)) == [
        "transformer: no --metrics_port, /metrics is served on the public API port"
    ]
    assert metrics_exposure_problems(isvc(good, [8080, 9095]), monitor(9095)) == [
        "metrics port 9095 is a declared containerPort (the public port on Knative)"
    ]
    assert metrics_exposure_problems(isvc(good, [8080]), monitor(9096)) == [
        "PodMonitor scrapes port 9096, the transformer serves metrics on 9095"
    ]
    assert metrics_exposure_problems(isvc(good, [8080]), monitor(9095, portNumber=9095)) == [
        "PodMonitor selects a declared port: an undeclared metrics port is never discovered"
    ]
    assert metrics_exposure_problems(
        isvc(["--http_port=8080", "--metrics_port=9091"], [8080]), monitor(9091)
    ) == ["metrics port 9091 collides with the queue-proxy"]
