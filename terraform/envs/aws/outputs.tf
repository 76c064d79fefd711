output "kubeconfig_command" {
  description = "Run this to point kubectl at the cluster."
  value       = module.platform.kubeconfig_command
}

output "region" {
  description = "AWS region of the stack."
  value       = module.platform.region
}

output "cluster_name" {
  description = "EKS cluster name."
  value       = module.platform.cluster_name
}

output "ecr_repository_url" {
  description = "Overlay image registry: <ecr_repository_url>:<tag> for the transformer image."
  value       = module.platform.ecr_repository_url
}

output "predictor_role_arn" {
  description = "Overlay: eks.amazonaws.com/role-arn on ServiceAccount lead-scoring-predictor."
  value       = module.platform.predictor_role_arn
}

output "batch_role_arn" {
  description = "Overlay: eks.amazonaws.com/role-arn on ServiceAccount lead-scoring-batch (batch scoring Job)."
  value       = module.platform.batch_role_arn
}

output "transformer_role_arn" {
  description = "Overlay: eks.amazonaws.com/role-arn on ServiceAccount lead-scoring-transformer."
  value       = module.platform.transformer_role_arn
}

output "models_bucket" {
  description = "Bucket for `aws s3 cp --recursive <artifact dir> s3://<models_bucket>/lead-scoring/<version>/`."
  value       = module.platform.models_bucket
}

output "lake_bucket" {
  description = "Bucket of the scored-lead data lake."
  value       = module.platform.lake_bucket
}

output "model_storage_uri" {
  description = "Overlay: InferenceService predictor storageUri and transformer MODEL_CARD_URI folder."
  value       = "${module.platform.model_storage_prefix}${var.model_version}/"
}

output "lake_uri" {
  description = "Overlay: transformer SINK_URI."
  value       = module.platform.lake_uri
}

output "api_keys_secret_arn" {
  description = "ARN of the API keys secret: the SecretProviderClass objectName only for a secret in another account or region."
  value       = module.platform.api_keys_secret_arn
}

output "api_keys_secret_name" {
  description = "Overlay: SecretProviderClass lead-scoring-api-keys objectName (REPLACE_WITH_API_KEYS_SECRET_NAME); also the --secret-id of `aws secretsmanager put-secret-value`."
  value       = module.platform.api_keys_secret_name
}

output "namespace" {
  description = "Namespace the IRSA roles trust."
  value       = module.platform.namespace
}

output "service_accounts" {
  description = "Service accounts the IRSA roles trust, by component."
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

output "cluster_autoscaler_role_arn" {
  description = "IRSA role the cluster autoscaler runs with."
  value       = module.platform.cluster_autoscaler_role_arn
}
