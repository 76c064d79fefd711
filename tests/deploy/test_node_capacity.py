"""Nodes follow pods: each cluster has a node autoscaler, and its maximum holds prod at maxReplicas.

Knative scales pods between minReplicas and maxReplicas; with a fixed node group the pods beyond the first nodes stay
Pending. EKS gets the cluster autoscaler from envs/aws (finding the managed node group by the ASG tags EKS sets);
AKS autoscales its pools itself. The sizing check uses the rendered prod overlays' requests at maxReplicas plus
Knative's queue-proxy (25m, its default request), the node sizes' vCPUs, and the allowances docs/kubernetes.md
"Capacity" states (0.5 CPU per node for allocatable reserve and daemon sets, ~3 CPU for the platform).
"""

from __future__ import annotations

import math
import re

from tests.deploy.rendering import REPO, isvc_of
from tests.deploy.tf_parse import blocks, parse_dir, parse_text, typed_blocks

ENVS = REPO / "terraform" / "envs"
QUEUE_PROXY_CPU = 0.025
NODE_RESERVE_CPU = 0.5
PLATFORM_CPU = 3.0


def cpu(quantity: str) -> float:
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def prod_pods(cloud: str) -> list[float]:
    """CPU request of every serving pod of the prod overlay at maxReplicas."""
    isvc = isvc_of(f"prod-{cloud}")
    spec = isvc["spec"]
    per_pod = {
        "predictor": cpu(spec["predictor"]["model"]["resources"]["requests"]["cpu"]),
        "transformer": sum(cpu(c["resources"]["requests"]["cpu"]) for c in spec["transformer"]["containers"]),
    }
    return [per_pod[c] + QUEUE_PROXY_CPU for c in per_pod for _ in range(spec[c]["maxReplicas"])]


def vcpus(size: str) -> int:
    if m := re.fullmatch(r"[a-z0-9-]+\.(\d*)x?large", size):  # EC2: large = 2, xlarge = 4, Nxlarge = 4N
        return 2 if not size.endswith("xlarge") else 4 * int(m.group(1) or 1)
    if m := re.fullmatch(r"Standard_[A-Z]+(\d+)[a-z]*_v\d+", size):  # Azure: the number after the family
        return int(m.group(1))
    raise ValueError(size)


def nodes_needed(pods: list[float], node_vcpus: int) -> int:
    usable = node_vcpus - NODE_RESERVE_CPU
    per_node = math.floor(usable / max(pods))
    return math.ceil(len(pods) / per_node) + math.ceil(PLATFORM_CPU / usable)


def defaults(env: str) -> dict:
    return {name: body.get("default") for name, body in blocks(parse_dir(ENVS / env), "variable").items()}


def test_eks_runs_the_cluster_autoscaler_for_this_cluster():
    parsed = parse_dir(ENVS / "aws")
    release = typed_blocks(parsed, "resource", "helm_release")["cluster_autoscaler"]
    assert release["chart"] == "cluster-autoscaler"
    values = str(release["values"])
    assert re.search(r"clusterName\s*=\s*module\.platform\.cluster_name", values)
    assert re.search(
        r'"eks\.amazonaws\.com/role-arn"\s*=\s*module\.platform\.cluster_autoscaler_role_arn', values
    )
    assert re.search(r'name\s*=\s*"cluster-autoscaler"', values)


def test_aks_pools_autoscale():
    parsed = parse_dir(REPO / "terraform" / "modules" / "azure")
    pool = typed_blocks(parsed, "resource", "azurerm_kubernetes_cluster_node_pool")["serving"]
    assert pool["auto_scaling_enabled"] is True
    assert "var.serving_max_count" in pool["max_count"] and "var.serving_min_count" in pool["min_count"]


def test_node_maxima_hold_prod_at_max_replicas():
    aws, azure = defaults("aws"), defaults("azure")
    assert aws["node_max_size"] >= nodes_needed(prod_pods("aws"), vcpus(aws["node_instance_types"][0]))
    assert azure["serving_max_count"] >= nodes_needed(prod_pods("azure"), vcpus(azure["serving_vm_size"]))


def test_sizing_arithmetic():
    assert [
        vcpus(s) for s in ("m7i.large", "m7i.xlarge", "m7i.4xlarge", "Standard_D4ds_v5", "Standard_D16ds_v5")
    ] == [2, 4, 16, 4, 16]
    # 24 pods of 0.725 CPU: 4 per 4-vCPU node -> 6 nodes, + 1 for the platform.
    assert nodes_needed([0.725] * 24, 4) == 7
    # The original node group (m7i.large, at most 6 nodes) could not hold them even with an autoscaler.
    assert nodes_needed([0.725] * 24, 2) > 6


def zoned_spread(isvc: dict) -> bool:
    """Does any component refuse to schedule rather than skew across zones?"""
    return any(
        c["topologyKey"] == "topology.kubernetes.io/zone" and c["whenUnsatisfiable"] == "DoNotSchedule"
        for component in ("predictor", "transformer")
        for c in isvc["spec"][component].get("topologySpreadConstraints", [])
    )


def multi_zone_groups(eks: dict) -> list[str]:
    """EKS node groups that may span zones. The cluster autoscaler models a group's new node from one template in
    the group's first zone (its AWS provider), so a pod that a DoNotSchedule zone spread sends elsewhere never
    triggers a scale-up: each group must sit in one subnet. A `for` over the zones passes when it gives each group
    the private subnet of its own zone."""
    groups = eks.get("eks_managed_node_groups", {})
    if isinstance(groups, str):
        loop = re.search(r"for (\w+), \w+ in local\.azs :", groups)
        if loop and re.search(rf"subnet_ids = \[module\.vpc\.private_subnets\[{loop.group(1)}\]\]", groups):
            return []
        return [groups[:60]]
    return [name for name, group in groups.items() if len(group.get("subnet_ids") or [None, None]) != 1]


def test_eks_node_groups_are_one_per_zone_under_a_strict_zone_spread():
    assert zoned_spread(isvc_of("prod-aws"))  # the reason for the rule below
    eks = blocks(parse_dir(REPO / "terraform" / "modules" / "aws"), "module")["eks"]
    assert multi_zone_groups(eks) == []
    vpc = blocks(parse_dir(REPO / "terraform" / "modules" / "aws"), "module")["vpc"]
    assert re.fullmatch(
        r"\$\{\[for i, _ in local\.azs : .+\]\}", vpc["private_subnets"]
    )  # one subnet per zone


def test_multi_zone_group_checker_sees_the_old_single_group():
    assert multi_zone_groups({"eks_managed_node_groups": {"serving": {"min_size": 3}}}) == ["serving"]
    assert multi_zone_groups({"eks_managed_node_groups": {"a": {"subnet_ids": ["${x[0]}"]}}}) == []
    loop = '${{for i, az in local.azs : "s-${az}" => {subnet_ids = module.vpc.private_subnets}}}'
    assert multi_zone_groups({"eks_managed_node_groups": loop}) != []


def multi_zone_pools(parsed: dict) -> list[str]:
    """AKS user pools that may span zones: a multi-zone pool adds its next node in a zone the autoscaler does not
    choose, so a pod held to one zone by a DoNotSchedule spread may wait forever. One zone each, or a for_each over
    zones that gives each pool its own."""
    found = []
    for name, pool in typed_blocks(parsed, "resource", "azurerm_kubernetes_cluster_node_pool").items():
        zones = pool.get("zones")
        if pool.get("for_each") and zones == ["${each.key}"]:
            continue
        if not isinstance(zones, list) or len(zones) != 1:
            found.append(name)
    return found


def test_aks_serving_pools_are_one_per_zone_under_a_strict_zone_spread():
    assert zoned_spread(isvc_of("prod-azure"))
    parsed = parse_dir(REPO / "terraform" / "modules" / "azure")
    assert multi_zone_pools(parsed) == []
    (cluster,) = typed_blocks(parsed, "resource", "azurerm_kubernetes_cluster").values()
    assert cluster["auto_scaler_profile"][0]["balance_similar_node_groups"] is True


def test_multi_zone_pool_checker_sees_the_old_pool():
    old = parse_text(
        'resource "azurerm_kubernetes_cluster_node_pool" "serving" {\n  zones = ["1", "2", "3"]\n}\n'
    )
    assert multi_zone_pools(old) == ["serving"]
