output "kserve_version" {
  description = "KServe release installed (kserve-crd, kserve-resources, kserve-runtime-configs)."
  value       = helm_release.kserve.version
}

output "knative_serving_version" {
  description = "Knative Serving version the operator deployed."
  value       = var.knative_serving_version
}

output "ingress_service" {
  description = "Namespace/name of the Kourier LoadBalancer Service that fronts every InferenceService."
  value       = "knative-serving/kourier"
}

output "ingress_domain" {
  description = "Domain of the InferenceService hostnames."
  value       = var.ingress_domain
}

output "secrets_store_rotation_poll_interval" {
  description = "Rotation poll interval of the Secrets Store CSI driver installed here (empty when not installed)."
  value       = var.install_secrets_store_csi_driver ? var.secrets_rotation_poll_interval : ""
}
