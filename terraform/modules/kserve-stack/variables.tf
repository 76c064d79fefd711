variable "cert_manager_version" {
  type        = string
  description = "cert-manager Helm chart version (jetstack). KServe's webhooks need its certificates."

  validation {
    condition     = can(regex("^v1\\.[0-9]+\\.[0-9]+$", var.cert_manager_version))
    error_message = "cert_manager_version must be an exact chart version like v1.17.2."
  }
}

variable "knative_operator_version" {
  type        = string
  description = "Knative operator Helm chart version; the operator installs Knative Serving and Kourier."

  validation {
    condition     = can(regex("^v1\\.[0-9]+\\.[0-9]+$", var.knative_operator_version))
    error_message = "knative_operator_version must be an exact chart version like v1.21.1."
  }
}

variable "knative_serving_version" {
  type        = string
  description = "Knative Serving version the operator deploys (must be one the operator release supports)."

  validation {
    condition     = can(regex("^1\\.[0-9]+(\\.[0-9]+)?$", var.knative_serving_version))
    error_message = "knative_serving_version must look like 1.21 or 1.21.1 (no leading v)."
  }
}

variable "kserve_version" {
  type        = string
  description = "KServe chart version for kserve-crd, kserve-resources and kserve-runtime-configs (one release, three charts)."

  validation {
    condition     = can(regex("^v0\\.(1[7-9]|[2-9][0-9])\\.[0-9]+$", var.kserve_version))
    error_message = "kserve_version must be an exact release like v0.21.0; the three-chart layout starts at v0.17.0."
  }
}

variable "ingress_domain" {
  type        = string
  description = "DNS domain Knative builds service hostnames from (<service>.<namespace>.<domain>). Use a domain you route to the Kourier load balancer, or keep example.com and send a Host header."

  validation {
    condition     = can(regex("^([a-z0-9]([a-z0-9-]*[a-z0-9])?\\.)+[a-z]{2,}$", var.ingress_domain))
    error_message = "ingress_domain must be a DNS name like scoring.example.com."
  }
}

variable "install_secrets_store_csi_driver" {
  type        = bool
  description = "Install the Secrets Store CSI driver chart. false on AKS, where the managed azure-keyvault-secrets-provider add-on brings the driver."
}

variable "secrets_store_csi_driver_version" {
  type        = string
  description = "Secrets Store CSI driver Helm chart version (kubernetes-sigs)."

  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+$", var.secrets_store_csi_driver_version))
    error_message = "secrets_store_csi_driver_version must be an exact chart version like 1.5.4."
  }
}

variable "secrets_rotation_poll_interval" {
  type        = string
  description = "How often the CSI driver re-reads mounted secrets, so a rotated API key reaches pods without a redeploy."

  validation {
    condition     = can(regex("^[0-9]+(s|m|h)$", var.secrets_rotation_poll_interval))
    error_message = "secrets_rotation_poll_interval must be a Go duration like 120s or 2m."
  }
}

variable "install_aws_secrets_provider" {
  type        = bool
  description = "Install the AWS Secrets Manager provider for the CSI driver (EKS)."
}

variable "aws_secrets_provider_version" {
  type        = string
  description = "secrets-store-csi-driver-provider-aws Helm chart version."

  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+$", var.aws_secrets_provider_version))
    error_message = "aws_secrets_provider_version must be an exact chart version like 2.2.0."
  }
}

variable "install_monitoring" {
  type        = bool
  description = "Install kube-prometheus-stack (Prometheus Operator, Prometheus, Grafana, Alertmanager)."
}

variable "kube_prometheus_stack_version" {
  type        = string
  description = "kube-prometheus-stack Helm chart version (used when install_monitoring is true)."

  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+$", var.kube_prometheus_stack_version))
    error_message = "kube_prometheus_stack_version must be an exact chart version like 83.4.0."
  }
}

variable "private_registry_hosts" {
  type        = list(string)
  description = "Registry hosts of the project's images (ECR or ACR). Knative skips digest resolution for them because its controller cannot authenticate there."

  validation {
    condition     = alltrue([for h in var.private_registry_hosts : can(regex("^[a-z0-9.-]+$", h))])
    error_message = "private_registry_hosts must be bare host names, without scheme or path."
  }
}
