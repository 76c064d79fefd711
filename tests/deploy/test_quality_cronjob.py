"""The quality job's CronJob component: renders with kubectl kustomize on top of a real overlay, validates against
Kubernetes 1.30, runs `python -m quality.report` from the transformer image with arguments its parser accepts."""

from __future__ import annotations

import os
import subprocess

import kubernetes_validate
import yaml

from quality.report import build_parser
from tests.deploy.rendering import REPO

COMPONENT = REPO / "kustomize" / "components" / "quality-cronjob"


def render_with_overlay(tmp_path) -> list[dict]:
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [os.path.relpath(REPO / "kustomize" / "overlays" / "dev-aws", overlay)],
                "components": [os.path.relpath(COMPONENT, overlay)],
            }
        )
    )
    result = subprocess.run(
        ["kubectl", "kustomize", str(overlay)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def test_component_adds_a_valid_locked_down_cronjob_in_the_namespace(tmp_path):
    objects = render_with_overlay(tmp_path)
    (cronjob,) = [
        o for o in objects if o["kind"] == "CronJob" and o["metadata"]["name"] == "lead-scoring-quality"
    ]
    (account,) = [
        o
        for o in objects
        if o["kind"] == "ServiceAccount" and o["metadata"]["name"] == "lead-scoring-quality"
    ]
    for obj in (cronjob, account):
        kubernetes_validate.validate(obj, "1.30", strict=True)
        assert obj["metadata"]["namespace"] == "lead-scoring"
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert (
        pod["serviceAccountName"] == "lead-scoring-quality" and pod["automountServiceAccountToken"] is False
    )
    (container,) = pod["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    # The same image name as the transformer's in the manifests, so an overlay's `images:` entry maps both when the
    # component is listed in that overlay; quality/ is copied into that image.
    base = subprocess.run(
        ["kubectl", "kustomize", str(REPO / "kustomize" / "base")], capture_output=True, text=True, check=True
    ).stdout
    isvc = next(o for o in yaml.safe_load_all(base) if o and o["kind"] == "InferenceService")
    assert isvc["spec"]["transformer"]["containers"][0]["image"] == container["image"]
    assert "COPY quality/ /app/quality/" in (REPO / "Dockerfile").read_text()


def test_job_arguments_are_accepted_by_the_real_cli(tmp_path, monkeypatch):
    (cronjob,) = [
        o
        for o in render_with_overlay(tmp_path)
        if o["kind"] == "CronJob" and o["metadata"]["name"] == "lead-scoring-quality"
    ]
    (container,) = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    args = [
        a.replace("$(LAKE_URI)", env["LAKE_URI"])
        .replace("$(MODEL_CARD_URI)", env["MODEL_CARD_URI"])
        .replace("$(PUSHGATEWAY_URL)", env["PUSHGATEWAY_URL"])
        for a in container["args"]
    ]
    assert container["command"][-2:] == ["-m", "quality.report"]
    parsed = build_parser().parse_args(args)
    assert parsed.lake == env["LAKE_URI"] and parsed.pushgateway == env["PUSHGATEWAY_URL"]
    assert parsed.model_card == [env["MODEL_CARD_URI"]]
    # The gauges' namespace label: the pod's own namespace, through the downward API, as --namespace's default.
    (namespace_env,) = [e for e in container["env"] if e["name"] == "POD_NAMESPACE"]
    assert namespace_env["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    monkeypatch.setenv("POD_NAMESPACE", cronjob["metadata"]["namespace"])
    assert build_parser().parse_args(args).namespace == "lead-scoring"
