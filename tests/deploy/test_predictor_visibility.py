"""The predictor is reachable only inside the cluster, and the transformer's hop still reaches it.

KServe builds each component's Knative Service with metadata.labels = union(runtime labels, InferenceService
labels, component labels, fixed labels) (components/predictor.go buildObjectMeta, knative/ksvc_reconciler.go
createKnativeService; the revision template gets the same minus `networking.knative.dev/visibility`, which KServe's
RevisionTemplateLabelDisallowedList keeps off the pods). Knative reads the visibility label from the Service and
publishes a cluster-local Service only on the local gateway, as `<name>.<namespace>.svc.cluster.local`.
Only a live cluster shows the route; the README's deployment section has the command and its expected output.
"""

from __future__ import annotations

import pytest

from tests.deploy.rendering import OVERLAYS, isvc_of, parse_transformer_args, transformer_container

VISIBILITY = "networking.knative.dev/visibility"


def knative_service_labels(isvc: dict, component: str) -> dict[str, str]:
    """metadata.labels of the Knative Service KServe creates for `component` (runtime labels: none set here)."""
    return {
        **(isvc["metadata"].get("labels") or {}),
        **(isvc["spec"][component].get("labels") or {}),
        "serving.kserve.io/inferenceservice": isvc["metadata"]["name"],
        "component": component,
    }


def visibility_problems(isvc: dict) -> list[str]:
    found = []
    if knative_service_labels(isvc, "predictor").get(VISIBILITY) != "cluster-local":
        found.append("predictor: public on the ingress (no cluster-local visibility)")
    if knative_service_labels(isvc, "transformer").get(VISIBILITY) == "cluster-local":
        found.append("transformer: cluster-local, the public API would be unreachable")
    return found


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_predictor_is_cluster_local_and_transformer_public(overlay):
    assert visibility_problems(isvc_of(overlay)) == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_transformer_calls_the_predictor_on_its_cluster_local_address(overlay):
    isvc = isvc_of(overlay)
    args = parse_transformer_args(transformer_container(isvc))
    name, namespace = isvc["metadata"]["name"], isvc["metadata"]["namespace"]
    # The cluster-local gateway serves exactly this host (plain HTTP/2 on port 80: the predictor's port is h2c).
    assert args.predictor_host == f"{name}-predictor.{namespace}.svc.cluster.local:80"
    assert args.predictor_protocol == "grpc-v2"
    assert [p["name"] for p in isvc["spec"]["predictor"]["model"]["ports"]] == ["h2c"]


def test_checker_flags_a_public_predictor_and_a_hidden_transformer():
    isvc = {
        "metadata": {"name": "x", "labels": {VISIBILITY: "cluster-local"}},
        "spec": {"predictor": {}, "transformer": {}},
    }
    assert visibility_problems(isvc) == ["transformer: cluster-local, the public API would be unreachable"]
    isvc["metadata"]["labels"] = {}
    assert visibility_problems(isvc) == ["predictor: public on the ingress (no cluster-local visibility)"]
