"""Every Knative feature flag a rendered pod spec needs is enabled by the KnativeServing the Terraform installs.

Knative's webhook copies a revision's pod spec through field masks (pkg/apis/serving/fieldmask.go at
knative-v1.21.1) and validates volumes in k8s_validation.go: a field behind a disabled `config-features` flag is
stripped or refused ("CSI volume support is disabled", or topologySpreadConstraints silently dropped). The flags
below are the names in pkg/apis/config/features.go; which spec field needs which flag is read off the masks. The
pod spec of each component is derived from the rendered InferenceService the way KServe builds it: the component's
inline PodSpec fields (the keys the `kubernetes` client's V1PodSpec knows) plus, for the predictor, the model
container. The KnativeServing is read from the local chart the Terraform installs, with the values Terraform passes.
"""

from __future__ import annotations

import re

import kubernetes.client
import pytest

from tests.deploy.local_chart import chart_documents
from tests.deploy.rendering import OVERLAYS, REPO, isvc_of, one
from tests.deploy.tf_parse import parse_dir, typed_blocks

STACK = REPO / "terraform" / "modules" / "kserve-stack"
CHART = STACK / "charts" / "knative-serving"

# Knative 1.21 defaults (pkg/apis/config/features.go defaultFeaturesConfig): only these are on without config.
ENABLED_BY_DEFAULT = {"kubernetes.podspec-volumes-emptydir", "multi-container"}

# PodSpec fields PodSpecMask keeps only when their flag is not disabled.
POD_FIELD_FLAGS = {
    "affinity": "kubernetes.podspec-affinity",
    "topologySpreadConstraints": "kubernetes.podspec-topologyspreadconstraints",
    "hostAliases": "kubernetes.podspec-hostaliases",
    "nodeSelector": "kubernetes.podspec-nodeselector",
    "runtimeClassName": "kubernetes.podspec-runtimeclassname",
    "tolerations": "kubernetes.podspec-tolerations",
    "securityContext": "kubernetes.podspec-securitycontext",
    "shareProcessNamespace": "kubernetes.podspec-shareprocessnamespace",
    "priorityClassName": "kubernetes.podspec-priorityclassname",
    "schedulerName": "kubernetes.podspec-schedulername",
    "initContainers": "kubernetes.podspec-init-containers",
    "dnsPolicy": "kubernetes.podspec-dnspolicy",
    "dnsConfig": "kubernetes.podspec-dnsconfig",
    "hostIPC": "kubernetes.podspec-hostipc",
    "hostPID": "kubernetes.podspec-hostpid",
    "hostNetwork": "kubernetes.podspec-hostnetwork",
}
# PodSpec fields PodSpecMask always keeps.
POD_FIELDS_ALLOWED = {
    "serviceAccountName",
    "containers",
    "volumes",
    "imagePullSecrets",
    "enableServiceLinks",
    "automountServiceAccountToken",
}
# VolumeSourceMask: secret, configMap and projected always; these behind a flag.
VOLUME_FLAGS = {
    "emptyDir": "kubernetes.podspec-volumes-emptydir",
    "persistentVolumeClaim": "kubernetes.podspec-persistent-volume-claim",
    "hostPath": "kubernetes.podspec-volumes-hostpath",
    "csi": "kubernetes.podspec-volumes-csi",
    "image": "kubernetes.podspec-volumes-image",
}
VOLUMES_ALLOWED = {"secret", "configMap", "projected"}


def pod_spec_of(component: dict, model: dict | None) -> dict:
    """The PodSpec KServe hands Knative for one component: inline PodSpec fields, plus the model container."""
    pod_keys = set(kubernetes.client.V1PodSpec.attribute_map.values())
    pod = {k: v for k, v in component.items() if k in pod_keys}
    if model is not None:
        container = {
            k: v for k, v in model.items() if k in set(kubernetes.client.V1Container.attribute_map.values())
        }
        pod["containers"] = [{"name": "kserve-container", **container}, *pod.get("containers", [])]
    return pod


def needed_flags(pod: dict) -> dict[str, str]:
    """{spec path: flag} for every field of `pod` that Knative keeps only behind a feature flag. A field Knative
    never accepts maps to "" (no flag can enable it)."""
    needs: dict[str, str] = {}
    for field, value in pod.items():
        if value in (None, [], {}):
            continue
        if field in POD_FIELD_FLAGS:
            needs[field] = POD_FIELD_FLAGS[field]
        elif field == "automountServiceAccountToken" and value is not False:
            needs[field] = ""
        elif field not in POD_FIELDS_ALLOWED:
            needs[field] = ""
    for i, volume in enumerate(pod.get("volumes", [])):
        for source in set(volume) - {"name"}:
            if source in VOLUME_FLAGS:
                needs[f"volumes[{i}].{source}"] = VOLUME_FLAGS[source]
            elif source not in VOLUMES_ALLOWED:
                needs[f"volumes[{i}].{source}"] = ""
    for i, container in enumerate(pod.get("containers", [])):
        here = f"containers[{i}]"
        if (container.get("securityContext") or {}).get("capabilities", {}).get("add"):
            needs[f"{here}.securityContext.capabilities.add"] = "kubernetes.containerspec-addcapabilities"
        for j, mount in enumerate(container.get("volumeMounts", [])):
            if mount.get("mountPropagation"):
                needs[f"{here}.volumeMounts[{j}].mountPropagation"] = (
                    "kubernetes.podspec-volumes-mount-propagation"
                )
        for j, env in enumerate(container.get("env", [])):
            source = env.get("valueFrom") or {}
            if "fieldRef" in source or "resourceFieldRef" in source:
                needs[f"{here}.env[{j}].valueFrom"] = "kubernetes.podspec-fieldref"
        for field in ("lifecycle", "stdin", "stdinOnce", "tty", "volumeDevices"):
            if container.get(field):
                needs[f"{here}.{field}"] = ""
    return needs


def component_pods(isvc: dict) -> dict[str, dict]:
    spec = isvc["spec"]
    return {
        "predictor": pod_spec_of(spec["predictor"], spec["predictor"].get("model")),
        "transformer": pod_spec_of(spec["transformer"], None),
    }


def installed_features() -> dict[str, str]:
    """spec.config.features of the KnativeServing the kserve-stack module's helm release renders."""
    release = typed_blocks(parse_dir(STACK), "resource", "helm_release")["knative_serving"]
    assert release["chart"] == "${path.module}/charts/knative-serving"
    # Terraform's values are merged over values.yaml; they must not replace the features map.
    assert not re.search(r"\bfeatures\s*=", str(release.get("values", ""))), (
        "Terraform overrides the features"
    )
    serving = one(chart_documents(CHART, namespace=release["namespace"]), "KnativeServing")
    return serving["spec"]["config"].get("features") or {}


def missing_flags(needs: dict[str, str], features: dict[str, str]) -> list[str]:
    on = {f for f in ENABLED_BY_DEFAULT if features.get(f) != "disabled"}
    on |= {f for f, v in features.items() if v in ("enabled", "allowed")}
    return sorted(
        f"{path}: {flag or 'never accepted by Knative'}" for path, flag in needs.items() if flag not in on
    )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_flag_a_rendered_pod_spec_needs_is_enabled(overlay):
    features = installed_features()
    for component, pod in component_pods(isvc_of(overlay)).items():
        assert missing_flags(needed_flags(pod), features) == [], component


def test_the_overlays_do_need_flags_beyond_the_defaults():
    # The derivation sees the fields this deployment relies on (a derivation that finds nothing proves nothing).
    needs = {}
    for overlay in OVERLAYS:
        for pod in component_pods(isvc_of(overlay)).values():
            needs.update(needed_flags(pod))
    assert set(needs.values()) >= {
        "kubernetes.podspec-topologyspreadconstraints",
        "kubernetes.podspec-volumes-csi",
        "kubernetes.podspec-volumes-emptydir",
    }


def test_derivation_maps_each_field_to_its_flag():
    pod = pod_spec_of(
        {
            "nodeSelector": {"pool": "serving"},
            "tolerations": [{"key": "k"}],
            "runtimeClassName": "gvisor",
            "securityContext": {"fsGroup": 1},
            "affinity": {"nodeAffinity": {}},
            "terminationGracePeriodSeconds": 5,
            "minReplicas": 2,
            "labels": {"a": "b"},
            "volumes": [
                {"name": "c", "csi": {"driver": "d"}},
                {"name": "p", "persistentVolumeClaim": {"claimName": "x"}},
            ],
            "containers": [
                {
                    "name": "x",
                    "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}],
                    "securityContext": {"capabilities": {"add": ["NET_ADMIN"]}},
                }
            ],
        },
        None,
    )
    assert needed_flags(pod) == {
        "nodeSelector": "kubernetes.podspec-nodeselector",
        "tolerations": "kubernetes.podspec-tolerations",
        "runtimeClassName": "kubernetes.podspec-runtimeclassname",
        "securityContext": "kubernetes.podspec-securitycontext",
        "affinity": "kubernetes.podspec-affinity",
        "terminationGracePeriodSeconds": "",
        "volumes[0].csi": "kubernetes.podspec-volumes-csi",
        "volumes[1].persistentVolumeClaim": "kubernetes.podspec-persistent-volume-claim",
        "containers[0].env[0].valueFrom": "kubernetes.podspec-fieldref",
        "containers[0].securityContext.capabilities.add": "kubernetes.containerspec-addcapabilities",
    }


def test_a_knative_serving_without_the_flags_is_caught():
    needs = {
        "topologySpreadConstraints": "kubernetes.podspec-topologyspreadconstraints",
        "volumes[0].csi": "kubernetes.podspec-volumes-csi",
        "volumes[1].emptyDir": "kubernetes.podspec-volumes-emptydir",
    }
    assert missing_flags(needs, {}) == [
        "topologySpreadConstraints: kubernetes.podspec-topologyspreadconstraints",
        "volumes[0].csi: kubernetes.podspec-volumes-csi",
    ]
    assert missing_flags(needs, {"kubernetes.podspec-volumes-emptydir": "disabled"})[-1].startswith(
        "volumes[1]"
    )
