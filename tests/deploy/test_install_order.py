"""KServe is installed only after Knative Serving is Ready.

KServe's controller checks for the serving.knative.dev Service CRD once, in SetupWithManager
(pkg/controller/v1beta1/inferenceservice/controller.go): started before the Knative operator has installed it, the
controller never watches Knative Services and InferenceServices stall. Helm's `wait` does not understand custom
resources, so the knative-serving release counts as done when the KnativeServing object exists; the chart's
post-install/upgrade hook Job (`kubectl wait --for=condition=Ready knativeserving/...`) is what holds the release,
and the `kserve` release must depend on that release. Read from the Terraform and the chart as Terraform and Helm
would; on a cluster the README's deployment section shows the check.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.deploy.local_chart import chart_documents
from tests.deploy.rendering import REPO
from tests.deploy.tf_parse import parse_dir, parse_text, typed_blocks

STACK = REPO / "terraform" / "modules" / "kserve-stack"
HOOK_EVENTS = {"post-install", "post-upgrade"}


def _duration_seconds(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)([smh])", text))


def order_problems(releases: dict, chart_docs_of) -> list[str]:
    found = []
    kserve = releases.get("kserve")
    serving = releases.get("knative_serving")
    if kserve is None or serving is None:
        return ["no kserve or knative_serving helm_release"]
    if "${helm_release.knative_serving}" not in kserve.get("depends_on", []):
        found.append("kserve does not depend on helm_release.knative_serving")
    if serving.get("wait") is False:
        found.append("knative_serving: wait = false skips the hooks' completion")
    docs = chart_docs_of(serving)
    crs = [d for d in docs if d["kind"] == "KnativeServing"]
    waits = []
    for doc in docs:
        events = set(str(doc["metadata"].get("annotations", {}).get("helm.sh/hook", "")).split(","))
        if doc["kind"] != "Job" or not HOOK_EVENTS <= events:
            continue
        for container in doc["spec"]["template"]["spec"]["containers"]:
            args = container.get("args", [])
            targets = {a for a in args if a.startswith("knativeserving/")}
            if "wait" in args and "--for=condition=Ready" in args and targets:
                timeout = next((a.split("=", 1)[1] for a in args if a.startswith("--timeout=")), "30s")
                waits.append((targets, _duration_seconds(timeout)))
    if not crs:
        found.append("knative-serving chart has no KnativeServing")
    elif not any(f"knativeserving/{crs[0]['metadata']['name']}" in targets for targets, _ in waits):
        found.append("no post-install/upgrade hook waits for the KnativeServing to be Ready")
    elif max(t for _, t in waits) >= float(serving.get("timeout", 300)):
        found.append("the hook's wait outlasts the release timeout: Helm would give up first")
    return found


def _chart_docs(release: dict) -> list[dict]:
    # A local chart path, relative to the module as Terraform resolves ${path.module}.
    chart = Path(release["chart"].replace("${path.module}", str(STACK)))
    return chart_documents(chart, namespace=release["namespace"])


def test_kserve_waits_for_knative_serving_ready():
    releases = typed_blocks(parse_dir(STACK), "resource", "helm_release")
    assert order_problems(releases, _chart_docs) == []


def test_checker_flags_the_original_order():
    # Before: kserve depended on the release, but nothing in the chart waited for Ready.
    releases = typed_blocks(
        parse_text("""
resource "helm_release" "knative_serving" {
  chart   = "x"
  timeout = 900
}
resource "helm_release" "kserve" {
  depends_on = [helm_release.cert_manager, helm_release.knative_serving]
}
"""),
        "resource",
        "helm_release",
    )
    cr = {"kind": "KnativeServing", "metadata": {"name": "knative-serving"}}
    assert order_problems(releases, lambda _: [cr]) == [
        "no post-install/upgrade hook waits for the KnativeServing to be Ready"
    ]
    del releases["kserve"]["depends_on"][1]
    assert (
        order_problems(releases, lambda _: [cr])[0]
        == "kserve does not depend on helm_release.knative_serving"
    )


def test_hook_objects_are_valid_kubernetes():
    import kubernetes_validate

    release = typed_blocks(parse_dir(STACK), "resource", "helm_release")["knative_serving"]
    plain = [d for d in _chart_docs(release) if d["kind"] != "KnativeServing"]
    assert {d["kind"] for d in plain} == {"ServiceAccount", "Role", "RoleBinding", "Job"}
    for doc in plain:
        kubernetes_validate.validate(doc, "1.30", strict=True)
