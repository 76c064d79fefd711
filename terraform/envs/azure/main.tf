provider "azurerm" {
  subscription_id = var.subscription_id
  # Shared keys are disabled on the storage account: talk to it with Entra ID.
  storage_use_azuread = true

  features {
    key_vault {
      # Purge protection is on; never try to purge on destroy.
      purge_soft_delete_on_destroy = false
    }
  }
}

# The cluster has no local accounts: Helm authenticates through kubelogin with the Azure CLI login
# of whoever runs Terraform (granted cluster admin by the module).
provider "helm" {
  kubernetes = {
    host                   = module.platform.cluster_host
    cluster_ca_certificate = base64decode(module.platform.cluster_ca_certificate)
    exec = {
      api_version = "client.authentication.k8s.io/v1beta1"
      command     = "kubelogin"
      # 6dae42f8-...: the fixed Entra application id of the AKS AAD server.
      args = ["get-token", "--login", "azurecli", "--server-id", "6dae42f8-4368-4678-94ff-3960e28e3630"]
    }
  }
}

module "platform" {
  source = "../../modules/azure"

  name                           = var.name
  location                       = var.location
  kubernetes_version             = var.kubernetes_version
  vnet_cidr                      = var.vnet_cidr
  sku_tier                       = var.sku_tier
  system_vm_size                 = var.system_vm_size
  serving_vm_size                = var.serving_vm_size
  serving_min_count              = var.serving_min_count
  serving_max_count              = var.serving_max_count
  host_encryption_enabled        = var.host_encryption_enabled
  allowed_ip_ranges              = var.allowed_ip_ranges
  ingress_source_ranges          = var.ingress_source_ranges
  storage_account_name           = var.storage_account_name
  storage_replication_type       = var.storage_replication_type
  key_vault_name                 = var.key_vault_name
  container_registry_name        = var.container_registry_name
  lake_cool_after_days           = var.lake_cool_after_days
  lake_delete_after_days         = var.lake_delete_after_days
  secrets_rotation_poll_interval = "2m"
  tags = merge(var.tags, {
    project     = "lead-scoring"
    environment = var.environment
    managed-by  = "terraform"
  })
}

module "kserve_stack" {
  source = "../../modules/kserve-stack"

  # One place for chart pins; see docs/terraform.md for why these fit KServe 0.21.
  cert_manager_version     = "v1.17.2"
  knative_operator_version = "v1.21.1"
  knative_serving_version  = "1.21.1"
  kserve_version           = "v0.21.0"
  ingress_domain           = var.ingress_domain
  private_registry_hosts   = [module.platform.acr_login_server]
  # AKS brings the driver and the Azure provider as the azure-keyvault-secrets-provider add-on.
  install_secrets_store_csi_driver = false
  secrets_store_csi_driver_version = "1.5.4"
  secrets_rotation_poll_interval   = "2m"
  install_aws_secrets_provider     = false
  aws_secrets_provider_version     = "2.2.0"
  install_monitoring               = var.install_monitoring
  kube_prometheus_stack_version    = "83.4.0"
}
