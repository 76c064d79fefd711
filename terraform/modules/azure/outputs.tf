output "resource_group_name" {
  description = "Resource group holding everything."
  value       = azurerm_resource_group.this.name
}

output "cluster_name" {
  description = "AKS cluster name."
  value       = azurerm_kubernetes_cluster.this.name
}

output "cluster_host" {
  description = "Kubernetes API endpoint (for the helm provider)."
  value       = azurerm_kubernetes_cluster.this.kube_config[0].host
  sensitive   = true
}

output "cluster_ca_certificate" {
  description = "Base64 CA bundle of the Kubernetes API (for the helm provider)."
  value       = azurerm_kubernetes_cluster.this.kube_config[0].cluster_ca_certificate
  sensitive   = true
}

output "kubeconfig_command" {
  description = "Commands that write a kubeconfig entry (Entra ID login through kubelogin)."
  value       = "az aks get-credentials --resource-group ${azurerm_resource_group.this.name} --name ${azurerm_kubernetes_cluster.this.name} && kubelogin convert-kubeconfig -l azurecli"
}

output "oidc_issuer_url" {
  description = "OIDC issuer the federated credentials trust."
  value       = azurerm_kubernetes_cluster.this.oidc_issuer_url
}

output "namespace" {
  description = "Kubernetes namespace the federated credentials trust (overlay: metadata.namespace)."
  value       = local.namespace
}

output "predictor_service_account" {
  description = "Service account the predictor identity trusts (overlay: predictor serviceAccountName)."
  value       = local.predictor_service_account
}

output "transformer_service_account" {
  description = "Service account the transformer identity trusts (overlay: transformer serviceAccountName)."
  value       = local.transformer_service_account
}

output "batch_service_account" {
  description = "Service account the batch identity trusts (kustomize/components/batch-job)."
  value       = local.batch_service_account
}

output "batch_client_id" {
  description = "Client id of the batch Job's identity (overlay: annotation azure.workload.identity/client-id on lead-scoring-batch)."
  value       = azurerm_user_assigned_identity.batch.client_id
}

output "predictor_client_id" {
  description = "Client id of the predictor identity (overlay: annotation azure.workload.identity/client-id)."
  value       = azurerm_user_assigned_identity.predictor.client_id
}

output "transformer_client_id" {
  description = "Client id of the transformer identity (overlay: annotation azure.workload.identity/client-id, SecretProviderClass clientID)."
  value       = azurerm_user_assigned_identity.transformer.client_id
}

output "tenant_id" {
  description = "Entra tenant id (SecretProviderClass tenantId)."
  value       = data.azurerm_client_config.current.tenant_id
}

output "storage_account" {
  description = "Storage account holding the models and lake containers."
  value       = azurerm_storage_account.this.name
}

output "model_storage_prefix" {
  description = "Model artifacts prefix; storageUri = this + <version>/."
  value       = "${azurerm_storage_account.this.primary_blob_endpoint}${azurerm_storage_container.models.name}/${local.model_prefix}"
}

output "lake_uri" {
  description = "Sink URI of the transformer (overlay: SINK_URI / --sink_uri)."
  value       = "${azurerm_storage_account.this.primary_blob_endpoint}${azurerm_storage_container.lake.name}/${local.lake_prefix}"
}

output "key_vault_name" {
  description = "Key Vault holding the api-keys secret (SecretProviderClass keyvaultName)."
  value       = azurerm_key_vault.this.name
}

output "api_keys_secret_name" {
  description = "Key Vault secret name of the API keys file (SecretProviderClass objectName)."
  value       = azurerm_key_vault_secret.api_keys.name
}

output "acr_login_server" {
  description = "ACR login server (overlay: image registry)."
  value       = azurerm_container_registry.this.login_server
}
