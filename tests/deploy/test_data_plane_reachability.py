"""Every registry, storage account/bucket and key store that pods reach is reachable under the firewall rules the same
Terraform writes, on AWS and on Azure.

Read from the .tf files with python-hcl2, following references the way Terraform resolves them (for_each over a
local map included). Azure: a store whose public endpoint denies by default (network rules `Deny`, or public access
off) must have a private endpoint for the right subresource, registered in the matching privatelink DNS zone, and
that zone must be linked to the VNet the node pools live in (kubelet, the storage initializer, the transformer and
the Key Vault CSI provider all resolve through the VNet's Azure-provided DNS) — or, for storage and Key Vault, a
virtual-network rule for the node subnet with the service endpoint on it. ACR has no VNet rules, and AKS is not a
trusted service for the firewalls' bypass. AWS: the node subnets must route to the service (NAT gateway or a VPC
endpoint), and no resource policy on a store may deny by network origin (aws:SourceVpce/SourceVpc/SourceIp/
VpcSourceIp) unless it names this VPC or one of its endpoints.
Only a live cluster proves DNS and routing: the README's deployment section has the operator's checks.
"""

from __future__ import annotations

import re

from tests.deploy.rendering import REPO
from tests.deploy.tf_parse import blocks, parse_dir, parse_text, typed_blocks

AZURE = REPO / "terraform" / "modules" / "azure"
AWS = REPO / "terraform" / "modules" / "aws"

# Store type -> (private endpoint subresource, Microsoft's privatelink zone, service endpoint or None).
AZURE_STORES = {
    "azurerm_container_registry": ("registry", "privatelink.azurecr.io", None),
    "azurerm_storage_account": ("blob", "privatelink.blob.core.windows.net", "Microsoft.Storage"),
    "azurerm_key_vault": ("vault", "privatelink.vaultcore.azure.net", "Microsoft.KeyVault"),
}
AWS_STORES = {
    "aws_s3_bucket": "s3",
    "aws_ecr_repository": "ecr",
    "aws_secretsmanager_secret": "secretsmanager",
    "aws_kms_key": "kms",
}
NETWORK_CONDITION = re.compile(r"aws:(SourceVpce|SourceVpc|SourceIp|VpcSourceIp)", re.I)


def _locals(parsed: dict) -> dict:
    out = {}
    for block in parsed.get("locals", []):
        out.update(block)
    return out


def instances(parsed: dict, type_name: str) -> list[tuple[str, dict]]:
    """(address, body) per instance, with `each.key` / `each.value.x` substituted for for_each over a local map."""
    found = []
    for name, body in typed_blocks(parsed, "resource", type_name).items():
        for_each = body.get("for_each")
        if not for_each:
            found.append((f"{type_name}.{name}", body))
            continue
        match = re.fullmatch(r"\$\{local\.(\w+)\}", str(for_each))
        assert match, f"{type_name}.{name}: for_each {for_each} is not a local map this test can expand"
        for key, value in _locals(parsed)[match.group(1)].items():
            found.append((f"{type_name}.{name}[{key}]", _substitute(body, key, value)))
    return found


def _substitute(node, key: str, value):
    if isinstance(node, dict):
        return {k: _substitute(v, key, value) for k, v in node.items() if k != "for_each"}
    if isinstance(node, list):
        return [_substitute(v, key, value) for v in node]
    if isinstance(node, str):
        if (m := re.fullmatch(r"\$\{each\.value\.(\w+)\}", node)) and isinstance(value, dict):
            return value[m.group(1)]
        return node.replace("${each.key}", key).replace("[each.key]", f'["{key}"]')
    return node


def _ref(type_name: str, name: str, attribute: str) -> str:
    return f"${{{type_name}.{name}.{attribute}}}"


def azure_problems(parsed: dict) -> list[str]:
    subnets = typed_blocks(parsed, "resource", "azurerm_subnet")
    clusters = typed_blocks(parsed, "resource", "azurerm_kubernetes_cluster")
    pools = [p for c in clusters.values() for p in c.get("default_node_pool", [])]
    pools += list(typed_blocks(parsed, "resource", "azurerm_kubernetes_cluster_node_pool").values())
    node_subnets = {p["vnet_subnet_id"] for p in pools}
    assert node_subnets, "no node pool names a subnet"
    node_vnets = set()
    for ref in node_subnets:
        name = re.fullmatch(r"\$\{azurerm_subnet\.(\w+)\.id\}", ref).group(1)
        vnet = re.fullmatch(
            r"\$\{azurerm_virtual_network\.(\w+)\.name\}", subnets[name]["virtual_network_name"]
        )
        node_vnets.add(_ref("azurerm_virtual_network", vnet.group(1), "id"))
    zones = dict(instances(parsed, "azurerm_private_dns_zone"))
    links = [body for _, body in instances(parsed, "azurerm_private_dns_zone_virtual_network_link")]
    endpoints = [body for _, body in instances(parsed, "azurerm_private_endpoint")]

    def zone_linked(zone_ref: str, zone_name: str) -> bool:
        match = re.fullmatch(r'\$\{azurerm_private_dns_zone\.(\w+)(\["(\w+)"\])?\.id\}', zone_ref)
        if not match:
            return False
        address = f"azurerm_private_dns_zone.{match.group(1)}" + (
            f"[{match.group(3)}]" if match.group(3) else ""
        )
        if zones.get(address, {}).get("name") != zone_name:
            return False
        name_ref = zone_ref[: -len(".id}")] + ".name}"
        return any(
            link["private_dns_zone_name"] == name_ref and link["virtual_network_id"] in node_vnets
            for link in links
        )

    def endpoint_path(resource_id: str, subresource: str, zone_name: str) -> bool:
        for endpoint in endpoints:
            connection = endpoint["private_service_connection"][0]
            if connection["private_connection_resource_id"] != resource_id:
                continue
            if subresource not in connection["subresource_names"]:
                continue
            groups = endpoint.get("private_dns_zone_group", [])
            if any(zone_linked(z, zone_name) for g in groups for z in g["private_dns_zone_ids"]):
                return True
        return False

    def subnet_rule_path(rules: dict, service: str | None) -> bool:
        if service is None:
            return False
        for ref in rules.get("virtual_network_subnet_ids", []) or []:
            name = re.fullmatch(r"\$\{azurerm_subnet\.(\w+)\.id\}", ref)
            if (
                ref in node_subnets
                and name
                and service in subnets[name.group(1)].get("service_endpoints", [])
            ):
                return True
        return False

    found = []
    for type_name, (subresource, zone_name, service) in AZURE_STORES.items():
        stores = typed_blocks(parsed, "resource", type_name)
        assert stores, f"no {type_name} in the module"
        for name, body in stores.items():
            rules = (
                body.get("network_rule_set") or body.get("network_rules") or body.get("network_acls") or [{}]
            )[0]
            open_to_all = (
                body.get("public_network_access_enabled", True) and rules.get("default_action") != "Deny"
            )
            if open_to_all:
                continue
            resource_id = _ref(type_name, name, "id")
            if not (endpoint_path(resource_id, subresource, zone_name) or subnet_rule_path(rules, service)):
                found.append(
                    f"{type_name}.{name}: denied to the nodes (no private endpoint '{subresource}' in a "
                    f"{zone_name} zone linked to the node VNet, no subnet rule)"
                )
    return found


# Kourier's LoadBalancer service listens on these (net-kourier's gateway service: http2 80, https 443).
INGRESS_PORTS = ("80", "443")


def _covers(rule: dict, port: str) -> bool:
    ranges = [rule.get("destination_port_range")] + list(rule.get("destination_port_ranges") or [])
    for r in filter(None, map(str, ranges)):
        low, _, high = r.partition("-")
        if r == "*" or (low.isdigit() and int(low) <= int(port) <= int(high or low)):
            return True
    return False


def azure_ingress_problems(parsed: dict) -> list[str]:
    """Clients reach Kourier's load balancer only if every NSG on a node subnet lets them in: AKS opens service
    ports on the NSG it manages on the node NICs, never on one attached to our own subnet, whose default rules end
    in DenyAllInBound (AllowAzureLoadBalancerInBound admits the probes, not the clients)."""
    clusters = typed_blocks(parsed, "resource", "azurerm_kubernetes_cluster")
    pools = [p for c in clusters.values() for p in c.get("default_node_pool", [])]
    pools += list(typed_blocks(parsed, "resource", "azurerm_kubernetes_cluster_node_pool").values())
    node_subnets = {p["vnet_subnet_id"] for p in pools}
    associations = typed_blocks(parsed, "resource", "azurerm_subnet_network_security_group_association")
    groups = typed_blocks(parsed, "resource", "azurerm_network_security_group")
    found = []
    for association in associations.values():
        if association["subnet_id"] not in node_subnets:
            continue
        group = re.fullmatch(
            r"\$\{azurerm_network_security_group\.(\w+)\.id\}", association["network_security_group_id"]
        )
        name = group.group(1)
        rules = list(groups[name].get("security_rule", []))
        rules += [
            r
            for r in typed_blocks(parsed, "resource", "azurerm_network_security_rule").values()
            if r.get("network_security_group_name") == _ref("azurerm_network_security_group", name, "name")
        ]
        inbound = sorted(
            (r for r in rules if str(r.get("direction", "")).lower() == "inbound"),
            key=lambda r: int(r.get("priority", 4096)),
        )
        for port in INGRESS_PORTS:
            first = next(
                (
                    r
                    for r in inbound
                    if str(r.get("protocol", "")).lower() in ("tcp", "*") and _covers(r, port)
                ),
                None,
            )
            sources = (
                " ".join(str(first.get(k, "")) for k in ("source_address_prefix", "source_address_prefixes"))
                if first
                else ""
            )
            if (
                first is None
                or first.get("access") != "Allow"
                or not re.search(r"var\.ingress_source_ranges|Internet|\*", sources)
            ):
                found.append(
                    f"azurerm_network_security_group.{name}: on a node subnet, and no inbound rule lets clients "
                    f"reach the ingress on TCP {port}"
                )
    return found


def aws_problems(parsed: dict) -> list[str]:
    found = []
    vpc = blocks(parsed, "module")["vpc"]
    eks = blocks(parsed, "module")["eks"]
    if eks["subnet_ids"] != "${module.vpc.private_subnets}":
        found.append("eks: nodes not in the VPC module's private subnets")
    endpoints = [body for _, body in instances(parsed, "aws_vpc_endpoint")]
    for type_name, service in AWS_STORES.items():
        if not typed_blocks(parsed, "resource", type_name):
            found.append(f"no {type_name} in the module")
            continue
        via_endpoint = any(
            str(e.get("service_name", "")).endswith(f".{service}")
            and "${module.vpc.private_route_table_ids}"
            in str(e.get("route_table_ids", "")) + str(e.get("subnet_ids", ""))
            for e in endpoints
        )
        if vpc.get("enable_nat_gateway") is not True and not via_endpoint:
            found.append(
                f"{type_name}: no route from the private subnets (no NAT gateway, no {service} endpoint)"
            )
    for e in endpoints:
        if e.get("policy"):
            found.append(f"vpc endpoint {e.get('service_name')}: an endpoint policy must be reviewed here")
    # Resource policies on the stores: bucket/repository/secret policies and the KMS key policy.
    policy_docs = typed_blocks(parsed, "data", "aws_iam_policy_document")
    attached = []
    for type_name in (
        "aws_s3_bucket_policy",
        "aws_ecr_repository_policy",
        "aws_secretsmanager_secret_policy",
    ):
        attached += [body["policy"] for _, body in instances(parsed, type_name)]
    attached += [body.get("policy", "") for body in typed_blocks(parsed, "resource", "aws_kms_key").values()]
    for policy in attached:
        match = re.search(r"data\.aws_iam_policy_document\.(\w+)", str(policy))
        statements = policy_docs[match.group(1)].get("statement", []) if match else []
        for statement in statements:
            if statement.get("effect") != "Deny":
                continue
            for condition in statement.get("condition", []):
                if NETWORK_CONDITION.search(str(condition.get("variable", ""))) and not any(
                    "aws_vpc_endpoint." in str(v) or "module.vpc.vpc_id" in str(v)
                    for v in condition.get("values", [])
                ):
                    found.append(
                        f"policy {match.group(1)}: denies by {condition['variable']} outside this VPC"
                    )
        if not match and NETWORK_CONDITION.search(str(policy)) and '"Deny"' in str(policy):
            found.append("inline policy: denies by network origin")
    return found


def test_every_azure_store_is_reachable_from_the_node_vnet():
    assert azure_problems(parse_dir(AZURE)) == []


def test_clients_reach_the_azure_ingress_through_the_node_subnet_nsg():
    assert azure_ingress_problems(parse_dir(AZURE)) == []


def test_azure_ingress_checker_flags_an_nsg_with_default_rules_only():
    """The module before the fix: a rule-less NSG on the node subnet; then a Deny ahead of the Allow."""
    base = """
resource "azurerm_subnet" "nodes" {}
resource "azurerm_kubernetes_cluster" "this" {
  default_node_pool {
    vnet_subnet_id = azurerm_subnet.nodes.id
  }
}
resource "azurerm_network_security_group" "nodes" {}
resource "azurerm_subnet_network_security_group_association" "nodes" {
  subnet_id                 = azurerm_subnet.nodes.id
  network_security_group_id = azurerm_network_security_group.nodes.id
}
"""
    assert azure_ingress_problems(parse_text(base)) == [
        f"azurerm_network_security_group.nodes: on a node subnet, and no inbound rule lets clients reach the "
        f"ingress on TCP {port}"
        for port in INGRESS_PORTS
    ]
    allow = """
resource "azurerm_network_security_rule" "in" {
  network_security_group_name = azurerm_network_security_group.nodes.name
  priority                    = 200
  direction                   = "Inbound"
  access                      = "Allow"
  protocol                    = "Tcp"
  source_address_prefix       = "Internet"
  destination_port_ranges     = ["80", "443"]
}
"""
    assert azure_ingress_problems(parse_text(base + allow)) == []
    deny_first = """
resource "azurerm_network_security_rule" "deny" {
  network_security_group_name = azurerm_network_security_group.nodes.name
  priority                    = 100
  direction                   = "Inbound"
  access                      = "Deny"
  protocol                    = "*"
  source_address_prefix       = "*"
  destination_port_range      = "0-1023"
}
"""
    assert len(azure_ingress_problems(parse_text(base + allow + deny_first))) == 2


def test_every_aws_store_is_reachable_from_the_node_subnets():
    assert aws_problems(parse_dir(AWS)) == []


AZURE_BEFORE = """
resource "azurerm_virtual_network" "this" {}
resource "azurerm_subnet" "nodes" {
  virtual_network_name = azurerm_virtual_network.this.name
  service_endpoints    = ["Microsoft.Storage"]
}
resource "azurerm_kubernetes_cluster" "this" {
  default_node_pool {
    vnet_subnet_id = azurerm_subnet.nodes.id
  }
}
resource "azurerm_container_registry" "this" {
  network_rule_set {
    default_action = "Deny"
  }
}
resource "azurerm_storage_account" "this" {
  network_rules {
    default_action             = "Deny"
    virtual_network_subnet_ids = [azurerm_subnet.nodes.id]
  }
}
resource "azurerm_key_vault" "this" {
  network_acls {
    default_action = "Deny"
  }
}
"""


def test_azure_checker_flags_a_registry_and_vault_behind_ip_rules_only():
    # The registry of the original module: Deny with operator IP rules only. Storage passes by its subnet rule.
    assert azure_problems(parse_text(AZURE_BEFORE)) == [
        "azurerm_container_registry.this: denied to the nodes (no private endpoint 'registry' in a "
        "privatelink.azurecr.io zone linked to the node VNet, no subnet rule)",
        "azurerm_key_vault.this: denied to the nodes (no private endpoint 'vault' in a "
        "privatelink.vaultcore.azure.net zone linked to the node VNet, no subnet rule)",
    ]


def test_azure_checker_wants_the_zone_linked_to_the_node_vnet():
    endpoint = """
resource "azurerm_private_dns_zone" "acr" {
  name = "privatelink.azurecr.io"
}
resource "azurerm_private_endpoint" "acr" {
  private_service_connection {
    private_connection_resource_id = azurerm_container_registry.this.id
    subresource_names              = ["registry"]
  }
  private_dns_zone_group {
    private_dns_zone_ids = [azurerm_private_dns_zone.acr.id]
  }
}
"""
    link = """
resource "azurerm_private_dns_zone_virtual_network_link" "acr" {
  private_dns_zone_name = azurerm_private_dns_zone.acr.name
  virtual_network_id    = azurerm_virtual_network.this.id
}
"""
    unlinked = azure_problems(parse_text(AZURE_BEFORE + endpoint))
    assert unlinked[0].startswith("azurerm_container_registry.this: denied")
    linked = azure_problems(parse_text(AZURE_BEFORE + endpoint + link))
    assert [p.split(":")[0] for p in linked] == ["azurerm_key_vault.this"]


def test_aws_checker_flags_a_network_deny_and_a_missing_route():
    snippet = """
module "vpc" {
  enable_nat_gateway = false
}
module "eks" {
  subnet_ids = module.vpc.private_subnets
}
resource "aws_s3_bucket" "models" {}
resource "aws_ecr_repository" "r" {}
resource "aws_secretsmanager_secret" "s" {}
resource "aws_kms_key" "k" {}
resource "aws_vpc_endpoint" "s3" {
  service_name    = "com.amazonaws.eu-west-1.s3"
  route_table_ids = module.vpc.private_route_table_ids
}
data "aws_iam_policy_document" "only_vpce" {
  statement {
    effect = "Deny"
    condition {
      test     = "StringNotEquals"
      variable = "aws:SourceVpce"
      values   = ["vpce-0123"]
    }
  }
}
resource "aws_s3_bucket_policy" "models" {
  policy = data.aws_iam_policy_document.only_vpce.json
}
"""
    assert aws_problems(parse_text(snippet)) == [
        "aws_ecr_repository: no route from the private subnets (no NAT gateway, no ecr endpoint)",
        "aws_secretsmanager_secret: no route from the private subnets (no NAT gateway, no secretsmanager endpoint)",
        "aws_kms_key: no route from the private subnets (no NAT gateway, no kms endpoint)",
        "policy only_vpce: denies by aws:SourceVpce outside this VPC",
    ]
