"""hack/rollout sends exactly the kubectl calls and merge patches we expect.

A recording `kubectl` on PATH appends its argv (one JSON list per call) to a log and answers `get` with a canned
InferenceService; jq and bash are the real ones.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ROLLOUT = REPO / "hack" / "rollout"

FAKE_KUBECTL = """#!/usr/bin/env python3
import json, os, sys
with open(os.environ["KUBECTL_LOG"], "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
if sys.argv[1:2] == ["get"]:
    sys.stdout.write(open(os.environ["KUBECTL_GET_JSON"]).read())
"""


def settled(component: str) -> dict:
    """A component whose last rollout is done: one revision created, ready, rolled out and at 100 %."""
    revision = f"lead-scoring-{component}-00001"
    return {
        "latestCreatedRevision": revision,
        "latestReadyRevision": revision,
        "latestRolledoutRevision": revision,
        "traffic": [{"revisionName": revision, "percent": 100, "latestRevision": True}],
    }


def splitting(component: str, percent: int = 10) -> dict:
    """A component in a canary: revision 2 (latest, ready) at `percent`, revision 1 (rolled out) at the rest."""
    new, old = f"lead-scoring-{component}-00002", f"lead-scoring-{component}-00001"
    return {
        "latestCreatedRevision": new,
        "latestReadyRevision": new,
        "latestRolledoutRevision": old,
        "previousRolledoutRevision": "",
        "traffic": [
            {"revisionName": new, "percent": percent, "latestRevision": True},
            {"revisionName": old, "percent": 100 - percent, "tag": "prev", "latestRevision": False},
        ],
    }


def isvc(predictor_percent=None, transformer_percent=None, status: dict | None = None) -> dict:
    spec = {
        "predictor": {
            "minReplicas": 3,
            "model": {"modelFormat": {"name": "xgboost"}, "storageUri": "s3://models/lead-scoring/v1/"},
        },
        "transformer": {
            "containers": [
                {
                    "name": "kserve-container",
                    "image": "registry/lead-scoring-transformer:0.1.0",
                    "args": ["--predictor_protocol=grpc-v2"],
                    "env": [
                        {"name": "MODEL_CARD_URI", "value": "s3://models/lead-scoring/v1/"},
                        {"name": "TMPDIR", "value": "/var/tmp"},
                    ],
                }
            ]
        },
    }
    if predictor_percent is not None:
        spec["predictor"]["canaryTrafficPercent"] = predictor_percent
    if transformer_percent is not None:
        spec["transformer"]["canaryTrafficPercent"] = transformer_percent
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "lead-scoring", "namespace": "lead-scoring"},
        "spec": spec,
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "components": status
            or {
                c: (splitting(c) if predictor_percent or transformer_percent else settled(c))
                for c in ("predictor", "transformer")
            },
        },
    }


@pytest.fixture
def kubectl(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "kubectl"
    fake.write_text(FAKE_KUBECTL)
    fake.chmod(0o755)
    log = tmp_path / "kubectl.log"
    canned = tmp_path / "isvc.json"
    canned.write_text(json.dumps(isvc()))

    def run(*args, answer: dict | None = None):
        if answer is not None:
            canned.write_text(json.dumps(answer))
        log.write_text("")
        env = {
            **os.environ,
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "KUBECTL_LOG": str(log),
            "KUBECTL_GET_JSON": str(canned),
        }
        env.pop("LEAD_SCORING_NAMESPACE", None)
        result = subprocess.run([str(ROLLOUT), *args], capture_output=True, text=True, env=env, check=False)
        calls = [json.loads(line) for line in log.read_text().splitlines()]
        return result, calls

    return run


def patch_of(calls) -> dict:
    patches = [c for c in calls if c[0] == "patch"]
    assert len(patches) == 1, calls
    call = patches[0]
    assert call[:3] == ["patch", "inferenceservice", "lead-scoring"]
    assert call[call.index("--namespace") + 1] == "lead-scoring"
    assert call[call.index("--type") + 1] == "merge"
    return json.loads(call[call.index("--patch") + 1])


def test_canary_moves_model_card_and_booster_in_one_patch(kubectl):
    result, calls = kubectl(
        "canary",
        "lead-scoring",
        "--model-uri",
        "s3://models/lead-scoring/v2/",
        "--image",
        "registry/lead-scoring-transformer:0.2.0",
        "--percent",
        "10",
    )
    assert result.returncode == 0, result.stderr
    assert calls[0] == [
        "get",
        "inferenceservice",
        "lead-scoring",
        "--namespace",
        "lead-scoring",
        "--output",
        "json",
    ]
    assert patch_of(calls) == {
        "spec": {
            "predictor": {
                "canaryTrafficPercent": 10,
                "model": {"storageUri": "s3://models/lead-scoring/v2/"},
            },
            "transformer": {
                "canaryTrafficPercent": 10,
                "containers": [
                    {
                        "name": "kserve-container",
                        "image": "registry/lead-scoring-transformer:0.2.0",
                        "args": ["--predictor_protocol=grpc-v2"],
                        "env": [
                            {"name": "MODEL_CARD_URI", "value": "s3://models/lead-scoring/v2/"},
                            {"name": "TMPDIR", "value": "/var/tmp"},
                        ],
                    }
                ],
            },
        }
    }


def test_canary_without_image_keeps_the_image(kubectl):
    result, calls = kubectl(
        "canary", "lead-scoring", "--model-uri", "s3://m/v3/", "--percent", "5", "--namespace", "lead-scoring"
    )
    assert result.returncode == 0, result.stderr
    container = patch_of(calls)["spec"]["transformer"]["containers"][0]
    assert container["image"] == "registry/lead-scoring-transformer:0.1.0"
    assert container["env"][0] == {"name": "MODEL_CARD_URI", "value": "s3://m/v3/"}


def test_canary_refuses_while_another_canary_runs(kubectl):
    result, calls = kubectl(
        "canary",
        "lead-scoring",
        "--model-uri",
        "s3://m/v3/",
        "--percent",
        "5",
        answer=isvc(predictor_percent=20, transformer_percent=20),
    )
    assert result.returncode != 0 and "still has canaryTrafficPercent" in result.stderr
    assert not [c for c in calls if c[0] == "patch"]


@pytest.mark.parametrize("uri", ["s3://models/lead-scoring/v1/", "s3://models/lead-scoring/v1"])
def test_canary_refuses_the_model_already_served(kubectl, uri):
    """The predictor would get no new revision: its split lands on one revision, which KServe takes for a rollback
    and answers by routing 90 % to the model of two rollouts ago."""
    result, calls = kubectl(
        "canary",
        "lead-scoring",
        "--model-uri",
        uri,
        "--image",
        "registry/lead-scoring-transformer:0.2.0",
        "--percent",
        "10",
    )
    assert result.returncode == 2 and "already serves" in result.stderr
    assert not [c for c in calls if c[0] == "patch"]


@pytest.mark.parametrize(
    "component, unsettle",
    [
        ("predictor", {"latestCreatedRevision": "lead-scoring-predictor-00002"}),  # not Ready yet
        (
            "transformer",
            {"latestRolledoutRevision": "lead-scoring-transformer-00000"},
        ),  # promote not seen yet
        ("predictor", {"latestCreatedRevision": ""}),  # no status at all
    ],
)
def test_canary_refuses_until_the_last_rollout_has_settled(kubectl, component, unsettle):
    status = {c: settled(c) for c in ("predictor", "transformer")}
    status[component] |= unsettle
    result, calls = kubectl(
        "canary", "lead-scoring", "--model-uri", "s3://m/v3/", "--percent", "5", answer=isvc(status=status)
    )
    assert result.returncode == 2 and f"the last rollout of the {component} has not settled" in result.stderr
    assert not [c for c in calls if c[0] == "patch"]


def test_canary_refuses_while_a_promote_still_splits_traffic(kubectl):
    status = {c: settled(c) for c in ("predictor", "transformer")}
    status["transformer"]["traffic"] = splitting("transformer")["traffic"]
    result, calls = kubectl(
        "canary", "lead-scoring", "--model-uri", "s3://m/v3/", "--percent", "5", answer=isvc(status=status)
    )
    assert result.returncode == 2 and "transformer has not settled" in result.stderr


@pytest.mark.parametrize(
    "spec, why",
    [((None, None), "after a promote"), ((0, 0), "after a rollback"), ((10, None), "one component only")],
)
def test_step_refuses_without_a_canary_on_both_components(kubectl, spec, why):
    result, calls = kubectl("step", "lead-scoring", "--percent", "50", answer=isvc(*spec))
    assert result.returncode == 2 and "no canary is running" in result.stderr, why
    assert not [c for c in calls if c[0] == "patch"]


def test_dry_run_prints_the_patch_and_changes_nothing(kubectl):
    result, calls = kubectl("step", "lead-scoring", "--percent", "30", "--dry-run", answer=isvc(10, 10))
    assert result.returncode == 0, result.stderr
    assert [c[0] for c in calls] == ["get"]
    assert json.loads(result.stdout) == {
        "spec": {"predictor": {"canaryTrafficPercent": 30}, "transformer": {"canaryTrafficPercent": 30}}
    }


def test_step_sets_the_same_percent_on_both_components(kubectl):
    result, calls = kubectl("step", "lead-scoring", "--percent", "50", answer=isvc(10, 10))
    assert result.returncode == 0, result.stderr
    assert patch_of(calls) == {
        "spec": {"predictor": {"canaryTrafficPercent": 50}, "transformer": {"canaryTrafficPercent": 50}}
    }


def test_promote_removes_the_split(kubectl):
    result, calls = kubectl("promote", "lead-scoring", answer=isvc(50, 50))
    assert result.returncode == 0, result.stderr
    assert patch_of(calls) == {
        "spec": {"predictor": {"canaryTrafficPercent": None}, "transformer": {"canaryTrafficPercent": None}}
    }


def test_promote_refuses_after_rollback(kubectl):
    result, calls = kubectl("promote", "lead-scoring", answer=isvc(0, 0))
    assert result.returncode != 0 and "rolled back" in result.stderr
    assert not [c for c in calls if c[0] == "patch"]


def test_rollback_sends_all_traffic_to_the_previous_revisions(kubectl):
    result, calls = kubectl("rollback", "lead-scoring")
    assert result.returncode == 0, result.stderr
    assert patch_of(calls) == {
        "spec": {"predictor": {"canaryTrafficPercent": 0}, "transformer": {"canaryTrafficPercent": 0}}
    }


@pytest.mark.parametrize("percent", ["0", "100", "ten", "-5", "", "18446744073709551626", "0010"])
def test_bad_percent_is_refused_before_any_kubectl_call(kubectl, percent):
    result, calls = kubectl("step", "lead-scoring", "--percent", percent)
    assert result.returncode == 2 and calls == []


def test_canary_needs_a_model_uri(kubectl):
    result, calls = kubectl("canary", "lead-scoring", "--percent", "10")
    assert result.returncode == 2 and calls == []


def test_status_shows_uris_and_traffic(kubectl):
    result, calls = kubectl("status", "lead-scoring", "-n", "staging", answer=isvc(10, 10))
    assert result.returncode == 0, result.stderr
    assert calls == [
        ["get", "inferenceservice", "lead-scoring", "--namespace", "staging", "--output", "json"]
    ]
    assert "s3://models/lead-scoring/v1/" in result.stdout
    assert "90% -> lead-scoring-predictor-00001 (tag prev)" in result.stdout
    assert "10% -> lead-scoring-predictor-00002 [latest]" in result.stdout
    assert (
        "revisions: created lead-scoring-predictor-00002, ready lead-scoring-predictor-00002, "
        "rolled out lead-scoring-predictor-00001" in result.stdout
    )
    assert "WARNING" not in result.stdout


def test_status_flags_a_candidate_that_is_not_ready_and_reads_the_named_container(kubectl):
    answer = isvc(10, 10)
    answer["status"]["components"]["predictor"]["latestCreatedRevision"] = "lead-scoring-predictor-00003"
    answer["spec"]["transformer"]["containers"].insert(0, {"name": "sidecar", "image": "proxy:1"})
    result, _ = kubectl("status", "lead-scoring", answer=answer)
    assert "WARNING: the newest revision is not Ready" in result.stdout
    assert "transformer image: registry/lead-scoring-transformer:0.1.0" in result.stdout


def test_shell_scripts_pass_shellcheck():
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck missing: run `bash hack/install-tools.sh`"
    scripts = [ROLLOUT, *sorted((REPO / "hack").glob("*.sh"))]
    result = subprocess.run([shellcheck, *map(str, scripts)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout
