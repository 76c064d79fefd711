output "region" {
  description = "AWS region everything was created in."
  value       = data.aws_region.current.region
}

output "cluster_name" {
  description = "EKS cluster name."
  value       = module.eks.cluster_name
}

output "cluster_endpoint" {
  description = "Kubernetes API endpoint (for the helm/kubernetes providers)."
  value       = module.eks.cluster_endpoint
}

output "cluster_certificate_authority_data" {
  description = "Base64 CA bundle of the Kubernetes API (for the helm/kubernetes providers)."
  value       = module.eks.cluster_certificate_authority_data
}

output "kubeconfig_command" {
  description = "Command that writes a kubeconfig entry for this cluster."
  value       = "aws eks update-kubeconfig --region ${data.aws_region.current.region} --name ${module.eks.cluster_name}"
}

output "namespace" {
  description = "Kubernetes namespace the IRSA roles trust (overlay: metadata.namespace)."
  value       = local.namespace
}

output "predictor_service_account" {
  description = "Service account the predictor role trusts (overlay: predictor serviceAccountName)."
  value       = local.predictor_service_account
}

output "transformer_service_account" {
  description = "Service account the transformer role trusts (overlay: transformer serviceAccountName)."
  value       = local.transformer_service_account
}

output "predictor_role_arn" {
  description = "IRSA role for lead-scoring-predictor (overlay: annotation eks.amazonaws.com/role-arn)."
  value       = aws_iam_role.predictor.arn
}

output "batch_service_account" {
  description = "Service account the batch role trusts (kustomize/components/batch-job)."
  value       = local.batch_service_account
}

output "batch_role_arn" {
  description = "IRSA role for lead-scoring-batch (overlay: annotation eks.amazonaws.com/role-arn)."
  value       = aws_iam_role.batch.arn
}

output "transformer_role_arn" {
  description = "IRSA role for lead-scoring-transformer (overlay: annotation eks.amazonaws.com/role-arn)."
  value       = aws_iam_role.transformer.arn
}

output "models_bucket" {
  description = "Bucket holding model artifacts under lead-scoring/<version>/."
  value       = aws_s3_bucket.models.id
}

output "lake_bucket" {
  description = "Bucket holding the scored-lead data lake under scores/."
  value       = aws_s3_bucket.lake.id
}

output "model_storage_prefix" {
  description = "Model artifacts prefix; storageUri = this + <version>/."
  value       = "s3://${aws_s3_bucket.models.id}/${local.model_prefix}"
}

output "lake_uri" {
  description = "Sink URI of the transformer (overlay: SINK_URI / --sink_uri)."
  value       = "s3://${aws_s3_bucket.lake.id}/${local.lake_prefix}"
}

output "ecr_repository_url" {
  description = "ECR repository of the transformer image (overlay: image registry)."
  value       = aws_ecr_repository.transformer.repository_url
}

output "api_keys_secret_arn" {
  description = "ARN of the Secrets Manager secret <name>/api-keys (an objectName for a secret in another account or region)."
  value       = aws_secretsmanager_secret.api_keys.arn
}

output "api_keys_secret_name" {
  description = "Name of the Secrets Manager secret holding the API keys file, <name>/api-keys (SecretProviderClass objectName)."
  value       = aws_secretsmanager_secret.api_keys.name
}

output "kms_key_arn" {
  description = "KMS key encrypting buckets, images and the secret (needed by `aws s3 cp` callers' policies)."
  value       = aws_kms_key.data.arn
}

output "cluster_autoscaler_role_arn" {
  description = "IRSA role of the cluster autoscaler (service account kube-system/cluster-autoscaler)."
  value       = aws_iam_role.cluster_autoscaler.arn
}

output "cluster_autoscaler_service_account" {
  description = "Namespace/name of the service account the cluster autoscaler role trusts."
  value       = "${local.cluster_autoscaler_namespace}/${local.cluster_autoscaler_service_account}"
}
