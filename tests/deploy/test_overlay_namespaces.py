"""Every namespaced object of every rendered overlay lands in the app namespace.

`kubectl apply -k` puts an object without metadata.namespace into the caller's current namespace. The CSI driver
looks a pod's SecretProviderClass up in the pod's namespace and KServe/Prometheus select in theirs, so an object
that escapes the namespace silently breaks the service (a base's `namespace:` does not reach objects that an
overlay's components add). Scope comes from the `kubernetes` client's generated APIs for built-in kinds and from
each custom resource's CRD (declared below, with where the CRD says so) — an unknown kind fails until classified.
"""

from __future__ import annotations

import functools
import inspect
import re

import kubernetes.client
import pytest

from tests.deploy.rendering import APP_NAMESPACE, OVERLAYS, rendered

# scope: Namespaced in each CRD (secrets-store-csi-driver secrets-store.csi.x-k8s.io_secretproviderclasses.yaml,
# prometheus-operator monitoring.coreos.com_{podmonitors,prometheusrules}.yaml, kserve serving.kserve.io_inferenceservices.yaml).
CUSTOM_NAMESPACED = {
    ("secrets-store.csi.x-k8s.io", "SecretProviderClass"),
    ("monitoring.coreos.com", "PodMonitor"),
    ("monitoring.coreos.com", "PrometheusRule"),
    ("serving.kserve.io", "InferenceService"),
}


def _snake(kind: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", kind).lower()


@functools.cache
def _builtin_scopes() -> dict[str, bool]:
    """kind (snake case) -> namespaced?, from the generated API classes' list_namespaced_* / list_* methods."""
    scopes: dict[str, bool] = {}
    for _, api in inspect.getmembers(kubernetes.client, inspect.isclass):
        if not api.__name__.endswith("Api"):
            continue
        for name in dir(api):
            if (match := re.fullmatch(r"read_namespaced_(\w+)", name)) and not name.endswith("_status"):
                scopes[match.group(1)] = True
            elif (match := re.fullmatch(r"read_(\w+)", name)) and not name.endswith(("_status", "_scale")):
                scopes.setdefault(match.group(1), False)
    return scopes


def is_namespaced(obj: dict) -> bool:
    group = obj["apiVersion"].rpartition("/")[0]
    if (group, obj["kind"]) in CUSTOM_NAMESPACED:
        return True
    scope = _builtin_scopes().get(_snake(obj["kind"]))
    assert scope is not None, f"unknown scope of {obj['apiVersion']} {obj['kind']}: classify it in this test"
    return scope


def namespace_problems(objects) -> list[str]:
    return [
        f"{o['kind']}/{o['metadata']['name']}: namespace {o['metadata'].get('namespace')!r}"
        for o in objects
        if is_namespaced(o) and o["metadata"].get("namespace") != APP_NAMESPACE
    ]


def test_scope_lookup_knows_builtin_kinds():
    assert is_namespaced({"apiVersion": "v1", "kind": "ServiceAccount"})
    assert is_namespaced({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget"})
    assert not is_namespaced({"apiVersion": "v1", "kind": "Namespace"})
    assert not is_namespaced({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole"})


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_namespaced_object_is_in_the_app_namespace(overlay):
    objects = rendered(overlay)
    assert {o["kind"] for o in objects} >= {"SecretProviderClass", "InferenceService", "PodMonitor"}
    assert namespace_problems(objects) == []


def test_checker_flags_an_object_without_namespace():
    spc = {
        "apiVersion": "secrets-store.csi.x-k8s.io/v1",
        "kind": "SecretProviderClass",
        "metadata": {"name": "lead-scoring-api-keys"},
    }
    assert namespace_problems([spc]) == ["SecretProviderClass/lead-scoring-api-keys: namespace None"]
