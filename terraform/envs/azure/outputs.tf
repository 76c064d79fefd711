output "kubeconfig_command" {
  description = "Run this to point kubectl at the cluster (needs kubelogin)."
  value       = module.platform.kubeconfig_command
}

output "resource_group_name" {
  description = "Resource group of the stack."
  value       = module.platform.resource_group_name
}

output "cluster_name" {
  description = "AKS cluster name."
  value       = module.platform.cluster_name
}

output "acr_login_server" {
  description = "Overlay image registry: <acr_login_server>/lead-scoring-transformer:<tag>."
  value       = module.platform.acr_login_server
}

output "predictor_client_id" {
  description = "Overlay: azure.workload.identity/client-id on ServiceAccount lead-scoring-predictor."
  value       = module.platform.predictor_client_id
}

output "batch_client_id" {
  description = "Overlay: azure.workload.identity/client-id on ServiceAccount lead-scoring-batch (batch scoring Job)."
  value       = module.platform.batch_client_id
}

output "transformer_client_id" {
  description = "Overlay: azure.workload.identity/client-id on ServiceAccount lead-scoring-transformer; SecretProviderClass clientID."
  value       = module.platform.transformer_client_id
}

output "tenant_id" {
  description = "Overlay: SecretProviderClass tenantId."
  value       = module.platform.tenant_id
}

output "key_vault_name" {
  description = "Overlay: SecretProviderClass keyvaultName."
  value       = module.platform.key_vault_name
}

output "api_keys_secret_name" {
  description = "Overlay: SecretProviderClass objectName (Key Vault secret api-keys)."
  value       = module.platform.api_keys_secret_name
}

output "storage_account" {
  description = "Storage account for `az storage blob upload-batch --account-name`."
  value       = module.platform.storage_account
}

output "model_storage_uri" {
  description = "Overlay: InferenceService predictor storageUri and transformer MODEL_CARD_URI folder."
  value       = "${module.platform.model_storage_prefix}${var.model_version}/"
}

output "lake_uri" {
  description = "Overlay: transformer SINK_URI."
  value       = module.platform.lake_uri
}

output "namespace" {
  description = "Namespace the federated credentials trust."
  value       = module.platform.namespace
}

output "service_accounts" {
  description = "Service accounts the federated credentials trust, by component."
  value = {
    predictor   = module.platform.predictor_service_account
    transformer = module.platform.transformer_service_account
    batch       = module.platform.batch_service_account
  }
}

output "kserve_version" {
  description = "KServe release installed on the cluster."
  value       = module.kserve_stack.kserve_version
}

output "ingress_service" {
  description = "Kourier LoadBalancer Service (namespace/name) to curl through."
  value       = module.kserve_stack.ingress_service
}

output "model_version" {
  description = "Overlay: the <version> folder of storageUri (REPLACE_WITH_MODEL_VERSION)."
  value       = var.model_version
}
