"""Batch scoring on the cluster: the template (a suspended CronJob's Indexed jobTemplate) renders in every overlay
(namespace, identity, security, Indexed mode, the online model), a model or image bump changes nothing Kubernetes
refuses to update, `hack/batch` turns the template into a run that batch's real argument parser accepts, and follows it.

Rendering is real (`kubectl kustomize`); the cluster is a recording `kubectl` on PATH (as in test_rollout.py) whose
`get cronjob lead-scoring-batch` answers with the template as rendered, plus the fields the API server adds.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from batch.cli import parse_args

REPO = Path(__file__).resolve().parents[2]
BATCH = REPO / "hack" / "batch"
OVERLAYS = ["dev-aws", "prod-aws", "dev-azure", "prod-azure"]

FAKE_KUBECTL = """#!/usr/bin/env python3
import json, os, sys
args = sys.argv[1:]
stdin = sys.stdin.read() if "--filename" in args and args[args.index("--filename") + 1] == "-" else None
with open(os.environ["KUBECTL_LOG"], "a") as log:
    log.write(json.dumps({"args": args, "stdin": stdin}) + "\\n")
if args[:1] == ["get"] and args[1] in ("job", "cronjob"):
    path = os.path.join(os.environ["KUBECTL_ANSWERS"], args[2] + ".json")
    if not os.path.exists(path):
        sys.stderr.write('Error from server (NotFound): %ss.batch "%s" not found\\n' % (args[1], args[2]))
        sys.exit(1)
    answers = json.load(open(path))
    if isinstance(answers, list):   # a sequence of states: one per call, the last one repeats
        json.dump(answers[1:] or answers, open(path, "w"))
        answers = answers[0]
    sys.stdout.write(json.dumps(answers))
"""


def rendered(overlay: str) -> list[dict]:
    result = subprocess.run(
        ["kubectl", "kustomize", str(REPO / "kustomize" / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def one(objects: list[dict], kind: str, name: str) -> dict:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, (kind, name, len(found))
    return found[0]


def as_served(cronjob: dict) -> dict:
    """The template as `kubectl get -o json` returns it: with a uid, a resource version, defaults and a status."""
    served = copy.deepcopy(cronjob)
    served["metadata"].update(uid="0b1c9a52-6f35-4d7e-a1f0-5b5e3c1d2e4f", resourceVersion="4711")
    served["spec"].setdefault("successfulJobsHistoryLimit", 3)
    served["spec"].setdefault("failedJobsHistoryLimit", 1)
    served["spec"]["jobTemplate"]["spec"]["template"]["spec"].setdefault("dnsPolicy", "ClusterFirst")
    served["status"] = {}
    return served


def job_spec(cronjob: dict) -> dict:
    return cronjob["spec"]["jobTemplate"]["spec"]


def run_status(name: str, done: str, failed: str = "", active: int = 0, condition: str | None = None) -> dict:
    status = {"completedIndexes": done, "active": active}
    if failed:
        status["failedIndexes"] = failed
    if condition:
        status["conditions"] = [
            {
                "type": condition,
                "status": "True",
                "reason": "FailedIndexes" if condition == "Failed" else "CompletionsReached",
            }
        ]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": "lead-scoring"},
        "spec": {"completions": 8},
        "status": status,
    }


def never_fires(schedule: str) -> bool:
    """A five-field cron schedule whose day of month is past the end of its (single) month: it never comes."""
    _, _, day, month, _ = schedule.split()
    longest = {2: 29, 4: 30, 6: 30, 9: 30, 11: 30}
    return day.isdigit() and month.isdigit() and int(day) > longest.get(int(month), 31)


# Fields the API server refuses to change on update (apps/v1 and batch/v1 validation): a `kubectl apply` that
# changes one fails with "field is immutable". A Job's pod template is the one a model bump would hit.
IMMUTABLE = {
    "Job": (("spec", "template"), ("spec", "selector"), ("spec", "completionMode")),
    "Deployment": (("spec", "selector"),),
    "DaemonSet": (("spec", "selector"),),
    "StatefulSet": (("spec", "selector"), ("spec", "serviceName"), ("spec", "volumeClaimTemplates")),
    "Service": (("spec", "clusterIP"),),
}


def immutable_changes(before: list[dict], after: list[dict]) -> list[str]:
    def get(obj, path):
        for key in path:
            obj = obj.get(key) if isinstance(obj, dict) else None
        return obj

    old = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in before}
    found = []
    for new in after:
        key = (new["kind"], new["metadata"].get("namespace"), new["metadata"]["name"])
        if key in old:
            for path in IMMUTABLE.get(new["kind"], ()):
                if get(old[key], path) != get(new, path):
                    found.append(f"{new['kind']}/{new['metadata']['name']}: {'.'.join(path)}")
    return found


def bumped(tmp_path: Path, overlay: str) -> list[dict]:
    """The overlay as an operator's next release renders it: a new model version and a new image tag."""
    for folder in ("kustomize", "manifests"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    root = tmp_path / "kustomize" / "overlays" / overlay
    for path in root.glob("*.yaml"):
        text = (
            path.read_text()
            .replace("REPLACE_WITH_MODEL_VERSION", "v2")
            .replace('newTag: "0.1.0"', 'newTag: "0.2.0"')
        )
        path.write_text(text)
    result = subprocess.run(["kubectl", "kustomize", str(root)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


@pytest.fixture
def kubectl(tmp_path):
    bin_dir, answers = tmp_path / "bin", tmp_path / "answers"
    bin_dir.mkdir()
    answers.mkdir()
    fake = bin_dir / "kubectl"
    fake.write_text(FAKE_KUBECTL)
    fake.chmod(0o755)
    log = tmp_path / "kubectl.log"

    def run(*args, objects: dict | None = None):
        for name, answer in (objects or {}).items():
            (answers / f"{name}.json").write_text(json.dumps(answer))
        log.write_text("")
        env = {
            **os.environ,
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "KUBECTL_LOG": str(log),
            "KUBECTL_ANSWERS": str(answers),
            "BATCH_POLL_SECONDS": "0",
        }
        env.pop("LEAD_SCORING_NAMESPACE", None)
        result = subprocess.run(
            [str(BATCH), *args], capture_output=True, text=True, env=env, check=False, timeout=60
        )
        calls = [json.loads(line) for line in log.read_text().splitlines()]
        return result, calls

    return run


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_template_renders_with_the_online_model_its_own_identity_and_lockdown(overlay):
    objects = rendered(overlay)
    cronjob = one(objects, "CronJob", "lead-scoring-batch")
    isvc = one(objects, "InferenceService", "lead-scoring")
    kubernetes_validate.validate(cronjob, "1.30", strict=True)
    assert cronjob["metadata"]["namespace"] == isvc["metadata"]["namespace"] == "lead-scoring"
    assert cronjob["spec"]["suspend"] is True and never_fires(
        cronjob["spec"]["schedule"]
    )  # a template, never a run
    spec = job_spec(cronjob)
    assert spec["completionMode"] == "Indexed" and spec["backoffLimitPerIndex"] >= 1
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"  # required by backoffLimitPerIndex
    # Its own account (it ran as the transformer's, whose role can neither read exports nor write batch/).
    assert pod["serviceAccountName"] == "lead-scoring-batch"
    assert pod["serviceAccountName"] not in {
        isvc["spec"]["transformer"]["serviceAccountName"],
        isvc["spec"]["predictor"]["serviceAccountName"],
    }
    assert pod["automountServiceAccountToken"] is False
    account = one(objects, "ServiceAccount", pod["serviceAccountName"])
    labels = spec["template"]["metadata"]["labels"]
    if overlay.endswith("azure"):
        assert labels.get("azure.workload.identity/use") == "true"
        assert (
            account["metadata"]["annotations"]["azure.workload.identity/client-id"]
            == "REPLACE_WITH_BATCH_CLIENT_ID"
        )
    else:
        assert "azure.workload.identity/use" not in labels
        assert (
            account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == "REPLACE_WITH_BATCH_ROLE_ARN"
        )
    assert account["metadata"]["namespace"] == cronjob["metadata"]["namespace"]
    (container,) = pod["containers"]
    transformer = isvc["spec"]["transformer"]["containers"][0]
    assert container["image"] == transformer["image"]
    assert container["command"] == ["python", "-m", "batch"]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    assert env["BATCH_MODEL_URI"] == isvc["spec"]["predictor"]["model"]["storageUri"]
    # The pushed metrics' namespace label (batch/metrics.py): the Job's own, through the downward API.
    (namespace,) = [e for e in container["env"] if e["name"] == "POD_NAMESPACE"]
    assert namespace["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert int(env["BATCH_SHARD_COUNT"]) == spec["completions"]
    assert container["securityContext"] == transformer["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert env["TMPDIR"] in mounts and env["BATCH_WORK_DIR"].startswith(env["TMPDIR"] + "/")
    rules = spec["podFailurePolicy"]["rules"]
    assert {
        "action": "FailIndex",
        "onExitCodes": {"containerName": "batch", "operator": "In", "values": [2]},
    } in rules


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_a_model_and_image_bump_applies_without_touching_an_immutable_field(overlay, tmp_path):
    """`kubectl apply -k` after a release: the batch template follows the new model and image, and nothing the
    API server refuses to update changes (a suspended Job as the template would: its pod template is immutable)."""
    before, after = rendered(overlay), bumped(tmp_path, overlay)
    assert immutable_changes(before, after) == []
    template = job_spec(one(after, "CronJob", "lead-scoring-batch"))["template"]
    (container,) = template["spec"]["containers"]
    assert container["image"].endswith(":0.2.0")
    assert {e["name"]: e["value"] for e in container["env"] if "value" in e}["BATCH_MODEL_URI"].endswith(
        "/v2/"
    )
    # The same bump on the template as it used to be, a suspended Job, is what `apply` refused.
    as_job = [
        {"kind": "Job", "metadata": o["metadata"], "spec": {**job_spec(o), "suspend": True}}
        for o in (one(before, "CronJob", "lead-scoring-batch"), one(after, "CronJob", "lead-scoring-batch"))
    ]
    assert immutable_changes([as_job[0]], [as_job[1]]) == ["Job/lead-scoring-batch: spec.template"]


def test_never_fires_knows_the_calendar():
    assert never_fires("0 0 31 2 *") and never_fires("0 0 30 2 *") and never_fires("0 0 31 4 *")
    assert not never_fires("0 0 29 2 *") and not never_fires("0 0 31 1 *") and not never_fires("0 0 * * *")


@pytest.mark.parametrize("overlay", ["prod-aws", "dev-azure"])
def test_run_creates_a_job_that_the_real_parser_accepts(kubectl, overlay):
    template = one(rendered(overlay), "CronJob", "lead-scoring-batch")
    result, calls = kubectl(
        "run",
        "--input",
        "s3://crm/exports/2026-12-04/",
        "--output",
        "s3://lake/batch/2026-12-04/",
        "--shards",
        "64",
        "--parallelism",
        "32",
        "--reasons",
        "3",
        "--name",
        "nightly-20261204",
        objects={"lead-scoring-batch": as_served(template)},
    )
    assert result.returncode == 0, result.stderr
    assert calls[0]["args"] == [
        "get",
        "cronjob",
        "lead-scoring-batch",
        "--namespace",
        "lead-scoring",
        "--output",
        "json",
    ]
    created = calls[1]
    assert created["args"] == ["create", "--namespace", "lead-scoring", "--filename", "-"]
    job = json.loads(created["stdin"])
    kubernetes_validate.validate(job, "1.30", strict=True)
    assert job["metadata"]["name"] == "nightly-20261204" and job["metadata"]["namespace"] == "lead-scoring"
    assert "selector" not in job["spec"] and "status" not in job and "uid" not in job["metadata"]
    assert "jobTemplate" not in job["spec"] and "schedule" not in job["spec"]
    assert job["metadata"]["labels"]["app.kubernetes.io/component"] == "batch"
    assert not [
        k for k in job["spec"]["template"]["metadata"]["labels"] if "controller-uid" in k or "job-name" in k
    ]
    assert job["spec"]["suspend"] is False
    assert (job["spec"]["completions"], job["spec"]["parallelism"]) == (64, 32)
    assert (
        job["spec"]["template"]["spec"]["serviceAccountName"]
        == job_spec(template)["template"]["spec"]["serviceAccountName"]
    )
    assert job["spec"]["podFailurePolicy"] == job_spec(template)["podFailurePolicy"]

    (container,) = job["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    # The pod of index 63 — what Kubernetes adds (JOB_COMPLETION_INDEX) plus the container's own env and args.
    args = parse_args(container["args"], {**env, "JOB_COMPLETION_INDEX": "63"})
    assert (args.input, args.output) == ("s3://crm/exports/2026-12-04/", "s3://lake/batch/2026-12-04/")
    assert (
        args.model
        == env["BATCH_MODEL_URI"]
        == one(rendered(overlay), "InferenceService", "lead-scoring")["spec"]["predictor"]["model"][
            "storageUri"
        ]
    )
    assert (args.shard_index, args.shard_count, args.reasons) == (63, 64, 3)
    assert str(args.work_dir) == env["BATCH_WORK_DIR"] and args.progress == "none"


def test_template_alone_is_not_a_runnable_run():
    """Without a run's input and output the parser refuses: the suspended template can never score by accident."""
    template = one(rendered("prod-aws"), "CronJob", "lead-scoring-batch")
    (container,) = job_spec(template)["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    with pytest.raises(SystemExit):
        parse_args(container["args"], env)


def test_follow_reports_progress_and_ends_with_the_job(kubectl):
    states = [
        run_status("nightly", "", active=8),
        run_status("nightly", "0-3", active=4),
        run_status("nightly", "0-7", condition="Complete"),
    ]
    result, calls = kubectl("follow", "nightly", objects={"nightly": states})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "nightly: 0/8 shard(s) done, 8 running, failed shards: none",
        "nightly: 4/8 shard(s) done, 4 running, failed shards: none",
        "nightly: 8/8 shard(s) done, 0 running, failed shards: none",
        "nightly: complete; the manifest is _manifest.json under the run's output",
    ]
    assert all(c["args"][:3] == ["get", "job", "nightly"] for c in calls) and len(calls) == 3


def test_follow_fails_when_a_shard_fails(kubectl):
    states = [run_status("nightly", "0-2,4-7", failed="3", condition="Failed")]
    result, _ = kubectl("follow", "nightly", "-n", "crm-batch", objects={"nightly": states})
    assert result.returncode == 1
    assert "7/8 shard(s) done, 0 running, failed shards: 3" in result.stdout
    assert "failed (FailedIndexes)" in result.stderr and "hack/batch logs nightly --index" in result.stderr


def test_logs_of_one_shard(kubectl):
    result, calls = kubectl("logs", "nightly", "--index", "3")
    assert result.returncode == 0, result.stderr
    assert calls == [
        {
            "args": [
                "logs",
                "--namespace",
                "lead-scoring",
                "--selector",
                "job-name=nightly,batch.kubernetes.io/job-completion-index=3",
                "--container",
                "batch",
                "--prefix",
                "--tail",
                "-1",
            ],
            "stdin": None,
        }
    ]


@pytest.mark.parametrize(
    "args",
    [
        ["run", "--output", "s3://lake/x/"],
        ["run", "--input", "s3://crm/x/"],
        ["run", "--input", "s3://crm/x/", "--output", "s3://lake/x/", "--shards", "0"],
        ["run", "--input", "s3://crm/x/", "--output", "s3://lake/x/", "--shards", "4", "--parallelism", "5"],
        ["run", "--input", "s3://crm/x/", "--output", "s3://lake/x/", "--name", "Nightly_Run"],
        ["run", "--input", "s3://crm/x/", "--output", "s3://lake/x/", "--reasons", "51"],
        ["status"],
    ],
)
def test_bad_arguments_are_refused_before_any_kubectl_call(kubectl, args):
    result, calls = kubectl(*args)
    assert result.returncode == 2 and calls == [] and result.stderr.startswith("batch: ")


def test_missing_template_is_a_clear_error(kubectl):
    result, calls = kubectl("run", "--input", "s3://crm/x/", "--output", "s3://lake/x/")
    assert result.returncode == 2 and "no batch template (CronJob lead-scoring-batch)" in result.stderr
    assert [c["args"][0] for c in calls] == ["get"]


def test_hack_batch_passes_shellcheck():
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck missing: run `bash hack/install-tools.sh`"
    result = subprocess.run([shellcheck, str(BATCH)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout


def test_dry_run_prints_the_job_and_creates_nothing(kubectl):
    template = one(rendered("dev-aws"), "CronJob", "lead-scoring-batch")
    result, calls = kubectl(
        "run",
        "--input",
        "s3://crm/x/",
        "--output",
        "s3://lake/x/",
        "--shards",
        "3",
        "--name",
        "try-1",
        "--dry-run",
        objects={"lead-scoring-batch": as_served(template)},
    )
    assert result.returncode == 0, result.stderr
    assert [c["args"][0] for c in calls] == ["get"]
    job = json.loads(result.stdout)
    assert (
        job["metadata"]["name"] == "try-1" and job["spec"]["completions"] == job["spec"]["parallelism"] == 3
    )
