"""The kustomize overlays render, validate against Kubernetes 1.30 and KServe's generated models, and hang together.

Everything here runs `kubectl kustomize` for real; nothing is mocked. Pod labels are the ones KServe's controller
puts on Knative revision pods (constants.InferenceServicePodLabelKey = serving.kserve.io/inferenceservice and
constants.KServiceComponentLabel = component, merged with the InferenceService's and the component's labels).
The InferenceService is checked against the models the pinned `kserve` package ships (tests/deploy/isvc_schema.py),
so nothing outside the repository is read.
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from urllib.parse import urlparse

import kubernetes_validate
import pytest
import yaml

from tests.deploy.isvc_schema import inference_service_problems
from tests.deploy.rendering import (
    OVERLAYS,
    REPO,
    env_of,
    kustomize,
    one,
    parse_transformer_args,
    rendered,
    transformer_container,
)
from transformer.sink.journal import max_bytes_for as journal_max_bytes_for

SCALE = {
    "dev": {"predictor": (2, 7), "transformer": (2, 5)},
    "prod": {"predictor": (3, 14), "transformer": (3, 10)},
}
CORE_GROUPS = {
    "v1",
    "apps/v1",
    "policy/v1",
    "batch/v1",
    "networking.k8s.io/v1",
    "rbac.authorization.k8s.io/v1",
}
# Knative 1.21 refuses volume mounts on these paths (pkg/apis/serving/k8s_validation.go, reservedPaths).
KNATIVE_RESERVED_PATHS = {"/", "/dev", "/dev/log"}
API_KEYS_DIR = "/var/run/secrets/lead-scoring"


def revision_pod_labels(isvc: dict, component: str) -> dict[str, str]:
    """Labels KServe gives the Knative revision pods of one component."""
    return {
        **isvc["metadata"].get("labels", {}),
        **isvc["spec"][component].get("labels", {}),
        "serving.kserve.io/inferenceservice": isvc["metadata"]["name"],
        "component": component,
    }


def selects(selector: dict, labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, "only matchLabels selectors are checked here"
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_core_objects_are_valid_kubernetes_1_30(overlay):
    core = [o for o in rendered(overlay) if o["apiVersion"] in CORE_GROUPS]
    assert {o["kind"] for o in core} >= {"Namespace", "ServiceAccount", "PodDisruptionBudget"}
    for obj in core:
        kubernetes_validate.validate(obj, "1.30", strict=True)
        assert obj["metadata"].get("namespace", "lead-scoring") == "lead-scoring"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_inferenceservice_matches_kserves_models(overlay):
    isvc = one(rendered(overlay), "InferenceService", "lead-scoring")
    assert inference_service_problems(isvc) == []
    assert isvc["metadata"]["namespace"] == "lead-scoring"
    annotations = isvc["metadata"]["annotations"]
    assert annotations["serving.kserve.io/deploymentMode"] == "Knative"
    # Aggregation needs KServe's qpext queue-proxy, which nothing installs; annotation scraping would double the
    # PodMonitor's scrape.
    assert "serving.kserve.io/enable-metric-aggregation" not in annotations
    assert "serving.kserve.io/enable-prometheus-scraping" not in annotations
    model = isvc["spec"]["predictor"]["model"]
    assert model["modelFormat"]["name"] == "xgboost"
    assert model["runtime"] == "kserve-xgbserver"
    assert model["protocolVersion"] == "v2"


@pytest.mark.parametrize(
    "plant, expected",
    [
        (lambda i: i["spec"]["predictor"].update(minReplica=3), "spec.predictor.minReplica: unknown field"),
        (
            lambda i: i["spec"]["predictor"].update(minReplicas="three"),
            "spec.predictor.minReplicas: expected int",
        ),
        (
            lambda i: i["spec"]["predictor"]["model"].update(storageURI="s3://x/"),
            "spec.predictor.model.storageURI: unknown field of V1beta1ModelSpec",
        ),
        (
            lambda i: i["spec"]["transformer"]["containers"][0]["readinessProbe"]["httpGet"].update(paht="/"),
            "spec.transformer.containers[0].readinessProbe.httpGet.paht: unknown field of V1HTTPGetAction",
        ),
        (
            lambda i: i["spec"]["transformer"]["volumes"][1].update(emptydir={}),
            "spec.transformer.volumes[1].emptydir: unknown field of V1Volume",
        ),
        (
            lambda i: i["spec"]["predictor"]["topologySpreadConstraints"][0].update(maxSkew=True),
            "spec.predictor.topologySpreadConstraints[0].maxSkew: expected int, got bool",
        ),
        (
            lambda i: i["spec"]["transformer"].update(containers={"name": "x"}),
            "spec.transformer.containers: expected a list",
        ),
    ],
)
def test_model_walk_catches_a_planted_mistake_with_its_path(plant, expected):
    broken = copy.deepcopy(one(rendered("prod-aws"), "InferenceService", "lead-scoring"))
    plant(broken)
    found = inference_service_problems(broken)
    assert len(found) == 1 and found[0].startswith(expected), found


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_other_custom_resources_have_their_required_fields(overlay):
    objects = rendered(overlay)
    spc = one(objects, "SecretProviderClass", "lead-scoring-api-keys")
    assert spc["apiVersion"] == "secrets-store.csi.x-k8s.io/v1"
    objects_param = yaml.safe_load(spc["spec"]["parameters"]["objects"])
    if overlay.endswith("aws"):
        assert spc["spec"]["provider"] == "aws"
        assert objects_param == [
            {
                "objectName": "REPLACE_WITH_API_KEYS_SECRET_NAME",  # Terraform's api_keys_secret_name
                "objectType": "secretsmanager",
                "objectAlias": "api-keys.yaml",
            }
        ]
    else:
        assert spc["spec"]["provider"] == "azure"
        entries = [yaml.safe_load(item) for item in objects_param["array"]]
        assert entries == [{"objectName": "api-keys", "objectType": "secret", "objectAlias": "api-keys.yaml"}]
        for key in ("keyvaultName", "tenantId", "clientID"):
            assert spc["spec"]["parameters"][key]
    rule = one(objects, "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1" and rule["spec"]["groups"]
    assert all(g["name"] and g["rules"] for g in rule["spec"]["groups"])
    monitor = one(objects, "PodMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["selector"] and monitor["spec"]["podMetricsEndpoints"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_transformer_args_are_accepted_by_the_real_parser_and_line_up(overlay):
    isvc = one(rendered(overlay), "InferenceService", "lead-scoring")
    container = transformer_container(isvc)
    args = parse_transformer_args(container)

    name, namespace = isvc["metadata"]["name"], isvc["metadata"]["namespace"]
    predictor = isvc["spec"]["predictor"]["model"]
    assert args.model_name == name  # the predictor serves the model under the InferenceService's name
    assert args.predictor_protocol == "grpc-v2"
    host, _, port = args.predictor_host.rpartition(":")
    assert host in {f"{name}-predictor.{namespace}", f"{name}-predictor.{namespace}.svc.cluster.local"}
    assert port == "80"  # the Knative service port; it speaks h2c because the predictor port is named h2c
    assert [(p["name"], p["containerPort"]) for p in predictor["ports"]] == [("h2c", 8081)]
    assert args.enable_predictor_health_check is True
    assert args.model_card_uri == predictor["storageUri"]
    assert args.http_port == container["ports"][0]["containerPort"] == 8080
    assert container["readinessProbe"]["httpGet"]["path"] == f"/v2/models/{args.model_name}/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] == args.http_port
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert Path(args.api_keys_file) == Path(API_KEYS_DIR) / "api-keys.yaml"
    assert "subPath" not in mounts[API_KEYS_DIR] and mounts[API_KEYS_DIR]["readOnly"] is True
    assert args.sink_spool_dir in mounts
    volumes = {v["name"]: v for v in isvc["spec"]["transformer"]["volumes"]}
    size_limit_mib = int(
        volumes[mounts[args.sink_spool_dir]["name"]]["emptyDir"]["sizeLimit"].removesuffix("Mi")
    )
    # The spool's files and the journal beside them (transformer/sink/journal.py) must fit the volume, or the
    # kubelet evicts the pod exactly when the store is down and the spool is full.
    needed = args.sink_spool_max_bytes + journal_max_bytes_for(args.sink_spool_max_bytes)
    assert needed < size_limit_mib * 1024 * 1024
    if overlay.endswith("aws"):
        assert args.sink_uri.startswith("s3://") and args.sink_uri.endswith("/scores/")
    else:
        assert re.fullmatch(r"https://[^/]+\.blob\.core\.windows\.net/lake/scores/", args.sink_uri)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_model_uris_and_identities_are_per_cloud(overlay):
    objects = rendered(overlay)
    isvc = one(objects, "InferenceService", "lead-scoring")
    uri = isvc["spec"]["predictor"]["model"]["storageUri"]
    accounts = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ServiceAccount"}
    assert set(accounts) == {"lead-scoring-predictor", "lead-scoring-transformer", "lead-scoring-batch"}
    assert isvc["spec"]["predictor"]["serviceAccountName"] == "lead-scoring-predictor"
    assert isvc["spec"]["transformer"]["serviceAccountName"] == "lead-scoring-transformer"
    if overlay.endswith("aws"):
        assert urlparse(uri).scheme == "s3" and "/lead-scoring/" in uri and uri.endswith("/")
        for sa in accounts.values():
            assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].startswith("REPLACE_WITH_")
    else:
        assert re.fullmatch(r"https://[^/]+\.blob\.core\.windows\.net/models/lead-scoring/[^/]+/", uri)
        for sa in accounts.values():
            assert sa["metadata"]["annotations"]["azure.workload.identity/client-id"].startswith(
                "REPLACE_WITH_"
            )
        for component in ("predictor", "transformer"):
            assert revision_pod_labels(isvc, component)["azure.workload.identity/use"] == "true"
    image = transformer_container(isvc)["image"]
    assert image.startswith("REPLACE_WITH_") and image.endswith(":0.1.0")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_api_keys_come_from_the_secret_provider_class(overlay):
    objects = rendered(overlay)
    assert not [o for o in objects if o["kind"] == "Secret"], (
        "cloud overlays must not ship the template Secret"
    )
    isvc = one(objects, "InferenceService", "lead-scoring")
    volumes = {v["name"]: v for v in isvc["spec"]["transformer"]["volumes"]}
    assert volumes["api-keys"]["csi"] == {
        "driver": "secrets-store.csi.k8s.io",
        "readOnly": True,
        "volumeAttributes": {"secretProviderClass": "lead-scoring-api-keys"},
    }


def test_base_uses_the_template_secret_without_keys():
    objects = kustomize(REPO / "kustomize" / "base")
    secret = one(objects, "Secret", "lead-scoring-api-keys")
    assert yaml.safe_load(secret["stringData"]["api-keys.yaml"]) == {"keys": []}
    isvc = one(objects, "InferenceService", "lead-scoring")
    volumes = {v["name"]: v for v in isvc["spec"]["transformer"]["volumes"]}
    assert volumes["api-keys"]["secret"]["secretName"] == secret["metadata"]["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_scale_is_set_per_environment_and_never_zero(overlay):
    isvc = one(rendered(overlay), "InferenceService", "lead-scoring")
    for component, (low, high) in SCALE[overlay.split("-")[0]].items():
        spec = isvc["spec"][component]
        assert (spec["minReplicas"], spec["maxReplicas"]) == (low, high)
        assert spec["scaleMetric"] in {"rps", "concurrency"} and spec["scaleTarget"] > 0
        assert spec["timeout"] > 0


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pod_disruption_budgets_select_the_revision_pods(overlay):
    objects = rendered(overlay)
    isvc = one(objects, "InferenceService", "lead-scoring")
    budgets = {o["metadata"]["name"]: o for o in objects if o["kind"] == "PodDisruptionBudget"}
    assert set(budgets) == {"lead-scoring-predictor", "lead-scoring-transformer"}
    for component in ("predictor", "transformer"):
        other = "transformer" if component == "predictor" else "predictor"
        selector = budgets[f"lead-scoring-{component}"]["spec"]["selector"]
        assert selects(selector, revision_pod_labels(isvc, component))
        assert not selects(selector, revision_pod_labels(isvc, other))
        # One pod at a time may go, and at least one stays even at minReplicas.
        assert budgets[f"lead-scoring-{component}"]["spec"]["maxUnavailable"] == 1
        assert isvc["spec"][component]["minReplicas"] >= 2


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_spread_over_zones_and_nodes(overlay):
    isvc = one(rendered(overlay), "InferenceService", "lead-scoring")
    for component in ("predictor", "transformer"):
        constraints = isvc["spec"][component]["topologySpreadConstraints"]
        assert {c["topologyKey"] for c in constraints} == {
            "topology.kubernetes.io/zone",
            "kubernetes.io/hostname",
        }
        for constraint in constraints:
            assert selects(constraint["labelSelector"], revision_pod_labels(isvc, component))


def component_containers(isvc: dict):
    yield "predictor", isvc["spec"]["predictor"]["model"]
    for container in isvc["spec"]["transformer"]["containers"]:
        yield "transformer", container


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_containers_are_locked_down_and_fit_knative(overlay):
    isvc = one(rendered(overlay), "InferenceService", "lead-scoring")
    for component, container in component_containers(isvc):
        security = container["securityContext"]
        assert security["runAsNonRoot"] is True
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"] == {"drop": ["ALL"]}
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}
        resources = container["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]) and {"cpu", "memory"} <= set(
            resources["limits"]
        )
        # Knative: one port, named for its protocol; no mount on its reserved paths; secret mounts read-only.
        assert len(container["ports"]) == 1 and container["ports"][0]["name"] in {"h2c", "http1"}
        volumes = {v["name"]: v for v in isvc["spec"][component]["volumes"]}
        for mount in container["volumeMounts"]:
            assert os.path.normpath(mount["mountPath"]) not in KNATIVE_RESERVED_PATHS
            if "emptyDir" not in volumes[mount["name"]]:
                assert mount.get("readOnly") is True
        tmpdir = env_of(container).get("TMPDIR")
        assert tmpdir in {m["mountPath"] for m in container["volumeMounts"]}
    assert transformer_container(isvc)["securityContext"]["runAsUser"] == 10001
    assert (
        isvc["spec"]["predictor"]["model"]["resources"]["requests"]["cpu"] != "1"
    )  # not the runtime's default


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_placeholder_is_documented(overlay):
    text = yaml.safe_dump_all(rendered(overlay))
    docs = (REPO / "docs" / "kubernetes.md").read_text()
    placeholders = set(re.findall(r"REPLACE_WITH_[A-Z0-9_]+", text))
    assert placeholders, "overlays are expected to carry marked placeholders"
    assert not [p for p in placeholders if p not in docs]


def test_monitoring_component_brings_every_monitoring_manifest():
    folder = REPO / "manifests" / "monitoring"
    expected = set()
    for path in folder.glob("*.y*ml"):
        if path.name.startswith("kustomization."):
            continue
        expected |= {(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(path.read_text()) if d}
    assert expected, "manifests/monitoring/ is empty"
    for overlay in OVERLAYS:
        assert expected <= {(o["kind"], o["metadata"]["name"]) for o in rendered(overlay)}


def test_canary_component_splits_both_components_alike(tmp_path):
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                # kustomize accepts only relative roots
                "resources": [os.path.relpath(REPO / "kustomize" / "overlays" / "prod-aws", tmp_path)],
                "components": [os.path.relpath(REPO / "kustomize" / "components" / "canary", tmp_path)],
            }
        )
    )
    isvc = one(kustomize(tmp_path), "InferenceService", "lead-scoring")
    assert inference_service_problems(isvc) == []
    percents = {isvc["spec"][c].get("canaryTrafficPercent") for c in ("predictor", "transformer")}
    assert len(percents) == 1 and 0 < percents.pop() < 100
