# Azure side of the lead-scoring platform: network, AKS (OIDC issuer + workload identity + Key Vault
# secrets provider), ACR, one storage account with the models and lake containers, the API-key
# vault and one user-assigned identity per service account. Kubernetes objects live in kustomize/.

data "azurerm_client_config" "current" {}

locals {
  # Contract names (see the project contract): overlays and federated credentials must agree exactly.
  namespace                   = "lead-scoring"
  predictor_service_account   = "lead-scoring-predictor"
  transformer_service_account = "lead-scoring-transformer"
  batch_service_account       = "lead-scoring-batch"

  model_prefix = "lead-scoring/"
  lake_prefix  = "scores/"
  # Batch scoring (docs/batch.md): CRM exports are put under exports/ of the lake container, runs write under batch/.
  exports_prefix = "exports/"
  batch_prefix   = "batch/"

  # The availability zones of the node pools (one serving pool each).
  serving_zones = ["1", "2", "3"]

  tags = merge(var.tags, { "app.kubernetes.io/part-of" = "lead-scoring" })

  # Azure ABAC (condition version 2.0) for a Storage Blob Data Contributor assignment on the lake container: reads
  # anywhere in it, writes, adds and deletes only on paths starting with the prefix given to format().
  lake_writes_only_under = <<-EOT
    (
      (
        !(ActionMatches{'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write'})
        AND
        !(ActionMatches{'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/add/action'})
        AND
        !(ActionMatches{'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/delete'})
      )
      OR
      (
        @Resource[Microsoft.Storage/storageAccounts/blobServices/containers/blobs:path] StringStartsWith '%s'
      )
    )
  EOT

  models_container_scope = "${azurerm_storage_account.this.id}/blobServices/default/containers/${azurerm_storage_container.models.name}"
  lake_container_scope   = "${azurerm_storage_account.this.id}/blobServices/default/containers/${azurerm_storage_container.lake.name}"
}

resource "azurerm_resource_group" "this" {
  name     = "${var.name}-rg"
  location = var.location
  tags     = local.tags
}

################################################################################
# Network: nodes in one subnet; registry, storage and vault reached through private endpoints
################################################################################

resource "azurerm_virtual_network" "this" {
  name                = "${var.name}-vnet"
  location            = azurerm_resource_group.this.location
  resource_group_name = azurerm_resource_group.this.name
  address_space       = [var.vnet_cidr]
  tags                = local.tags
}

resource "azurerm_subnet" "nodes" {
  name                 = "nodes"
  resource_group_name  = azurerm_resource_group.this.name
  virtual_network_name = azurerm_virtual_network.this.name
  address_prefixes     = [cidrsubnet(var.vnet_cidr, 1, 0)]
}

# Private endpoints of the registry, the storage account and the vault: a sixteenth of the VNet at the start of
# its second half (10.50.128.0/20 for the default /16, a /26 for the smallest /22).
resource "azurerm_subnet" "endpoints" {
  name                 = "private-endpoints"
  resource_group_name  = azurerm_resource_group.this.name
  virtual_network_name = azurerm_virtual_network.this.name
  address_prefixes     = [cidrsubnet(var.vnet_cidr, 4, 8)]
}

resource "azurerm_network_security_group" "nodes" {
  name                = "${var.name}-nodes"
  location            = azurerm_resource_group.this.location
  resource_group_name = azurerm_resource_group.this.name
  tags                = local.tags
}

resource "azurerm_subnet_network_security_group_association" "nodes" {
  subnet_id                 = azurerm_subnet.nodes.id
  network_security_group_id = azurerm_network_security_group.nodes.id
}

# The clients' way in. AKS opens a LoadBalancer service's ports only on the NSG it manages on the node NICs; an NSG
# on our own subnet is evaluated too and ends in DenyAllInBound, and AllowAzureLoadBalancerInBound matches only the
# load balancer's probes, not clients (their source address is kept). Without this rule the Kourier load balancer
# answers its health probes and drops every request. Kourier's service listens on 80 and 443, and AKS's rules use
# floating IP, so the ports seen here are the service's own.
resource "azurerm_network_security_rule" "scoring_ingress" {
  name                        = "allow-scoring-ingress"
  priority                    = 200
  direction                   = "Inbound"
  access                      = "Allow"
  protocol                    = "Tcp"
  source_port_range           = "*"
  source_address_prefix       = length(var.ingress_source_ranges) == 1 ? var.ingress_source_ranges[0] : null
  source_address_prefixes     = length(var.ingress_source_ranges) > 1 ? var.ingress_source_ranges : null
  destination_address_prefix  = "*"
  destination_port_ranges     = ["80", "443"]
  resource_group_name         = azurerm_resource_group.this.name
  network_security_group_name = azurerm_network_security_group.nodes.name
}

# Default rules only (VNet inbound allowed): the nodes reach the endpoints, nothing from outside does.
resource "azurerm_network_security_group" "endpoints" {
  name                = "${var.name}-endpoints"
  location            = azurerm_resource_group.this.location
  resource_group_name = azurerm_resource_group.this.name
  tags                = local.tags
}

resource "azurerm_subnet_network_security_group_association" "endpoints" {
  subnet_id                 = azurerm_subnet.endpoints.id
  network_security_group_id = azurerm_network_security_group.endpoints.id
}

################################################################################
# AKS
################################################################################

resource "azurerm_log_analytics_workspace" "this" {
  name                = "${var.name}-logs"
  location            = azurerm_resource_group.this.location
  resource_group_name = azurerm_resource_group.this.name
  sku                 = "PerGB2018"
  retention_in_days   = 30
  tags                = local.tags
}

resource "azurerm_kubernetes_cluster" "this" {
  name                = var.name
  location            = azurerm_resource_group.this.location
  resource_group_name = azurerm_resource_group.this.name
  dns_prefix          = var.name
  kubernetes_version  = var.kubernetes_version
  sku_tier            = var.sku_tier

  # Workload identity: pods exchange their service-account token for an Entra token of the
  # user-assigned identities below (federated credentials trust this issuer).
  oidc_issuer_enabled       = true
  workload_identity_enabled = true

  # Entra ID only: no static admin kubeconfig; access is granted with Azure RBAC.
  local_account_disabled            = true
  role_based_access_control_enabled = true
  azure_active_directory_role_based_access_control {
    azure_rbac_enabled = true
    tenant_id          = data.azurerm_client_config.current.tenant_id
  }

  automatic_upgrade_channel = "patch"
  node_os_upgrade_channel   = "NodeImage"
  azure_policy_enabled      = true

  api_server_access_profile {
    authorized_ip_ranges = [for c in var.allowed_ip_ranges : strcontains(c, "/") ? c : "${c}/32"]
  }

  default_node_pool {
    name                         = "system"
    vm_size                      = var.system_vm_size
    vnet_subnet_id               = azurerm_subnet.nodes.id
    only_critical_addons_enabled = true
    auto_scaling_enabled         = true
    min_count                    = 2
    max_count                    = 3
    max_pods                     = 50
    os_disk_type                 = "Ephemeral"
    os_disk_size_gb              = 64
    host_encryption_enabled      = var.host_encryption_enabled
    zones                        = ["1", "2", "3"]

    upgrade_settings {
      max_surge = "33%"
    }
  }

  identity {
    type = "SystemAssigned"
  }

  network_profile {
    network_plugin      = "azure"
    network_plugin_mode = "overlay"
    network_policy      = "cilium"
    network_data_plane  = "cilium"
    load_balancer_sku   = "standard"
  }

  oms_agent {
    log_analytics_workspace_id = azurerm_log_analytics_workspace.this.id
  }

  # The managed Secrets Store CSI driver + Azure Key Vault provider (AKS add-on), with rotation
  # polling so a new api-keys version reaches the mounted file without a redeploy.
  key_vault_secrets_provider {
    secret_rotation_enabled  = true
    secret_rotation_interval = var.secrets_rotation_poll_interval
  }

  # The serving pools are one per zone (below): keep them the same size.
  auto_scaler_profile {
    balance_similar_node_groups = true
    expander                    = "least-waste"
  }

  tags = local.tags
}

# One serving pool per zone. A pool spanning zones adds its next node in a zone of its own choosing, so a pod that
# the InferenceService's zone spread (whenUnsatisfiable: DoNotSchedule) needs in one zone may never get a node
# there; a pool per zone gives the autoscaler a node it knows the zone of. The totals (serving_*_count) are shared
# out per zone, rounded up.
resource "azurerm_kubernetes_cluster_node_pool" "serving" {
  for_each = toset(local.serving_zones)

  name                    = "serving${each.key}"
  kubernetes_cluster_id   = azurerm_kubernetes_cluster.this.id
  vm_size                 = var.serving_vm_size
  vnet_subnet_id          = azurerm_subnet.nodes.id
  auto_scaling_enabled    = true
  min_count               = ceil(var.serving_min_count / length(local.serving_zones))
  max_count               = ceil(var.serving_max_count / length(local.serving_zones))
  max_pods                = 50
  os_disk_type            = "Ephemeral"
  os_disk_size_gb         = 128
  host_encryption_enabled = var.host_encryption_enabled
  zones                   = [each.key]
  node_labels             = { "lead-scoring/pool" = "serving" }

  upgrade_settings {
    max_surge = "33%"
  }

  tags = local.tags
}

# A cluster in our own VNet needs its identity to manage the subnet (load balancers, NICs).
resource "azurerm_role_assignment" "cluster_network" {
  scope                = azurerm_subnet.nodes.id
  role_definition_name = "Network Contributor"
  principal_id         = azurerm_kubernetes_cluster.this.identity[0].principal_id
}

################################################################################
# ACR: the transformer image; the kubelet pulls with its identity
################################################################################

resource "azurerm_container_registry" "this" {
  name                = var.container_registry_name
  location            = azurerm_resource_group.this.location
  resource_group_name = azurerm_resource_group.this.name
  # Premium: network rules, retention of untagged manifests, zone redundancy, dedicated data endpoints.
  sku                           = "Premium"
  admin_enabled                 = false
  anonymous_pull_enabled        = false
  public_network_access_enabled = true
  zone_redundancy_enabled       = true
  data_endpoint_enabled         = true
  retention_policy_in_days      = 30
  trust_policy_enabled          = true

  network_rule_set {
    default_action = "Deny"
    ip_rule = [for c in var.allowed_ip_ranges : {
      action   = "Allow"
      ip_range = strcontains(c, "/") ? c : "${c}/32"
    }]
  }

  tags = local.tags
}

resource "azurerm_role_assignment" "kubelet_acr_pull" {
  scope                = azurerm_container_registry.this.id
  role_definition_name = "AcrPull"
  principal_id         = azurerm_kubernetes_cluster.this.kubelet_identity[0].object_id
}

################################################################################
# Storage: models and lake containers, Entra ID auth only
################################################################################

resource "azurerm_storage_account" "this" {
  name                              = var.storage_account_name
  location                          = azurerm_resource_group.this.location
  resource_group_name               = azurerm_resource_group.this.name
  account_kind                      = "StorageV2"
  account_tier                      = "Standard"
  account_replication_type          = var.storage_replication_type
  min_tls_version                   = "TLS1_2"
  https_traffic_only_enabled        = true
  allow_nested_items_to_be_public   = false
  infrastructure_encryption_enabled = true
  # Entra ID (workload identity, `--auth-mode login`) only: no account keys to leak.
  shared_access_key_enabled       = false
  default_to_oauth_authentication = true
  public_network_access_enabled   = true

  network_rules {
    default_action = "Deny"
    bypass         = ["AzureServices"]
    ip_rules       = [for c in var.allowed_ip_ranges : trimsuffix(c, "/32")]
  }

  blob_properties {
    versioning_enabled = true

    delete_retention_policy {
      days = 14
    }

    container_delete_retention_policy {
      days = 14
    }
  }

  sas_policy {
    expiration_period = "00.01:00:00"
  }

  tags = local.tags
}

# Blob read/write/delete logs go to the cluster's Log Analytics workspace (resource logs; the legacy
# Storage Analytics logging needs account keys, which are disabled).
resource "azurerm_monitor_diagnostic_setting" "blob" {
  name                       = "blob-access"
  target_resource_id         = "${azurerm_storage_account.this.id}/blobServices/default"
  log_analytics_workspace_id = azurerm_log_analytics_workspace.this.id

  enabled_log {
    category = "StorageRead"
  }

  enabled_log {
    category = "StorageWrite"
  }

  enabled_log {
    category = "StorageDelete"
  }
}

resource "azurerm_storage_container" "models" {
  name                  = "models"
  storage_account_id    = azurerm_storage_account.this.id
  container_access_type = "private"
}

resource "azurerm_storage_container" "lake" {
  name                  = "lake"
  storage_account_id    = azurerm_storage_account.this.id
  container_access_type = "private"
}

resource "azurerm_storage_management_policy" "this" {
  storage_account_id = azurerm_storage_account.this.id

  rule {
    name    = "age-scored-leads"
    enabled = true

    filters {
      prefix_match = ["${azurerm_storage_container.lake.name}/${local.lake_prefix}"]
      blob_types   = ["blockBlob"]
    }

    actions {
      base_blob {
        tier_to_cool_after_days_since_modification_greater_than = var.lake_cool_after_days
        delete_after_days_since_modification_greater_than       = var.lake_delete_after_days
      }

      version {
        delete_after_days_since_creation = 30
      }
    }
  }

  rule {
    name    = "expire-old-model-versions"
    enabled = true

    filters {
      prefix_match = ["${azurerm_storage_container.models.name}/${local.model_prefix}"]
      blob_types   = ["blockBlob"]
    }

    actions {
      version {
        delete_after_days_since_creation = 90
      }
    }
  }
}

################################################################################
# Key Vault: the api-keys secret (value set by an operator, never kept in state)
################################################################################

resource "azurerm_key_vault" "this" {
  name                          = var.key_vault_name
  location                      = azurerm_resource_group.this.location
  resource_group_name           = azurerm_resource_group.this.name
  tenant_id                     = data.azurerm_client_config.current.tenant_id
  sku_name                      = "standard"
  enable_rbac_authorization     = true
  purge_protection_enabled      = true
  soft_delete_retention_days    = 30
  public_network_access_enabled = true

  network_acls {
    default_action = "Deny"
    bypass         = "AzureServices"
    ip_rules       = [for c in var.allowed_ip_ranges : strcontains(c, "/") ? c : "${c}/32"]
  }

  tags = local.tags
}

# Whoever applies this configuration operates the service: they create the placeholder secret
# and later write real key versions, upload models and push images.
resource "azurerm_role_assignment" "operator_secrets" {
  scope                = azurerm_key_vault.this.id
  role_definition_name = "Key Vault Secrets Officer"
  principal_id         = data.azurerm_client_config.current.object_id
}

resource "azurerm_role_assignment" "operator_models" {
  scope                = local.models_container_scope
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = data.azurerm_client_config.current.object_id
}

resource "azurerm_role_assignment" "operator_acr_push" {
  scope                = azurerm_container_registry.this.id
  role_definition_name = "AcrPush"
  principal_id         = data.azurerm_client_config.current.object_id
}

resource "azurerm_role_assignment" "operator_cluster_admin" {
  scope                = azurerm_kubernetes_cluster.this.id
  role_definition_name = "Azure Kubernetes Service RBAC Cluster Admin"
  principal_id         = data.azurerm_client_config.current.object_id
}

resource "azurerm_key_vault_secret" "api_keys" {
  name         = "api-keys"
  key_vault_id = azurerm_key_vault.this.id
  content_type = "application/yaml"
  # An empty key list admits nobody; the real file is written with `az keyvault secret set`.
  value = yamlencode({ keys = [] })

  lifecycle {
    ignore_changes = [value, expiration_date, tags]
  }

  depends_on = [azurerm_role_assignment.operator_secrets]
}

################################################################################
# Private endpoints: what pods reach (kubelet pulling images, the storage initializer and the transformer
# reading models and writing the lake, the Key Vault CSI provider reading api-keys) resolves to a private
# address in the VNet. The public endpoints keep denying everything but the operators' IPs: AKS is not a
# trusted service for the firewalls' bypass, and its outbound IP is not in any rule.
################################################################################

locals {
  # Zone names: Microsoft's private DNS zone values for each service's subresource.
  private_endpoints = {
    registry = {
      resource_id = azurerm_container_registry.this.id
      subresource = "registry"
      zone        = "privatelink.azurecr.io"
    }
    blob = {
      resource_id = azurerm_storage_account.this.id
      subresource = "blob"
      zone        = "privatelink.blob.core.windows.net"
    }
    vault = {
      resource_id = azurerm_key_vault.this.id
      subresource = "vault"
      zone        = "privatelink.vaultcore.azure.net"
    }
  }
}

resource "azurerm_private_dns_zone" "this" {
  for_each = local.private_endpoints

  name                = each.value.zone
  resource_group_name = azurerm_resource_group.this.name
  tags                = local.tags
}

# Nodes use Azure-provided DNS, which answers from private zones linked to their VNet.
resource "azurerm_private_dns_zone_virtual_network_link" "this" {
  for_each = local.private_endpoints

  name                  = "${var.name}-${each.key}"
  resource_group_name   = azurerm_resource_group.this.name
  private_dns_zone_name = azurerm_private_dns_zone.this[each.key].name
  virtual_network_id    = azurerm_virtual_network.this.id
  registration_enabled  = false
  tags                  = local.tags
}

resource "azurerm_private_endpoint" "this" {
  for_each = local.private_endpoints

  name                = "${var.name}-${each.key}"
  location            = azurerm_resource_group.this.location
  resource_group_name = azurerm_resource_group.this.name
  subnet_id           = azurerm_subnet.endpoints.id

  private_service_connection {
    name                           = "${var.name}-${each.key}"
    private_connection_resource_id = each.value.resource_id
    subresource_names              = [each.value.subresource]
    is_manual_connection           = false
  }

  # Writes the A records (for ACR: login server and regional data endpoint) into the linked zone.
  private_dns_zone_group {
    name                 = each.key
    private_dns_zone_ids = [azurerm_private_dns_zone.this[each.key].id]
  }

  tags = local.tags
}

################################################################################
# Workload identity: one user-assigned identity per service account
################################################################################

resource "azurerm_user_assigned_identity" "predictor" {
  name                = "${var.name}-predictor"
  location            = azurerm_resource_group.this.location
  resource_group_name = azurerm_resource_group.this.name
  tags                = local.tags
}

resource "azurerm_user_assigned_identity" "transformer" {
  name                = "${var.name}-transformer"
  location            = azurerm_resource_group.this.location
  resource_group_name = azurerm_resource_group.this.name
  tags                = local.tags
}

resource "azurerm_federated_identity_credential" "predictor" {
  name                = "lead-scoring-predictor"
  resource_group_name = azurerm_resource_group.this.name
  parent_id           = azurerm_user_assigned_identity.predictor.id
  audience            = ["api://AzureADTokenExchange"]
  issuer              = azurerm_kubernetes_cluster.this.oidc_issuer_url
  subject             = "system:serviceaccount:lead-scoring:lead-scoring-predictor"
}

resource "azurerm_federated_identity_credential" "transformer" {
  name                = "lead-scoring-transformer"
  resource_group_name = azurerm_resource_group.this.name
  parent_id           = azurerm_user_assigned_identity.transformer.id
  audience            = ["api://AzureADTokenExchange"]
  issuer              = azurerm_kubernetes_cluster.this.oidc_issuer_url
  subject             = "system:serviceaccount:lead-scoring:lead-scoring-transformer"
}

resource "azurerm_user_assigned_identity" "batch" {
  name                = "${var.name}-batch"
  location            = azurerm_resource_group.this.location
  resource_group_name = azurerm_resource_group.this.name
  tags                = local.tags
}

resource "azurerm_federated_identity_credential" "batch" {
  name                = "lead-scoring-batch"
  resource_group_name = azurerm_resource_group.this.name
  parent_id           = azurerm_user_assigned_identity.batch.id
  audience            = ["api://AzureADTokenExchange"]
  issuer              = azurerm_kubernetes_cluster.this.oidc_issuer_url
  subject             = "system:serviceaccount:lead-scoring:lead-scoring-batch"
}

# predictor: read the model container.
resource "azurerm_role_assignment" "predictor_models" {
  scope                = local.models_container_scope
  role_definition_name = "Storage Blob Data Reader"
  principal_id         = azurerm_user_assigned_identity.predictor.principal_id
}

# transformer: read the model card ...
resource "azurerm_role_assignment" "transformer_models" {
  scope                = local.models_container_scope
  role_definition_name = "Storage Blob Data Reader"
  principal_id         = azurerm_user_assigned_identity.transformer.principal_id
}

# ... write Parquet to the lake, where the condition (Azure ABAC) limits writes and deletes
# to blobs under scores/ ...
resource "azurerm_role_assignment" "transformer_lake" {
  scope                = local.lake_container_scope
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = azurerm_user_assigned_identity.transformer.principal_id
  condition_version    = "2.0"
  condition            = format(local.lake_writes_only_under, local.lake_prefix)
}

# batch Job (kustomize/components/batch-job): read the model container ...
resource "azurerm_role_assignment" "batch_models" {
  scope                = local.models_container_scope
  role_definition_name = "Storage Blob Data Reader"
  principal_id         = azurerm_user_assigned_identity.batch.principal_id
}

# ... read the lake container (CRM exports under exports/, a run's markers under batch/) and write only under
# batch/ (the same ABAC condition as the transformer's, on another prefix). No key vault access.
resource "azurerm_role_assignment" "batch_lake" {
  scope                = local.lake_container_scope
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = azurerm_user_assigned_identity.batch.principal_id
  condition_version    = "2.0"
  condition            = format(local.lake_writes_only_under, local.batch_prefix)
}

# transformer: ... and read the api-keys secret (this one secret, not the vault).
resource "azurerm_role_assignment" "transformer_api_keys" {
  scope                = azurerm_key_vault_secret.api_keys.resource_versionless_id
  role_definition_name = "Key Vault Secrets User"
  principal_id         = azurerm_user_assigned_identity.transformer.principal_id
}
