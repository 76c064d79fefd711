variable "subscription_id" {
  type        = string
  description = "Azure subscription to deploy into (azurerm 4.x requires it explicitly)."

  validation {
    condition     = can(regex("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", var.subscription_id))
    error_message = "subscription_id must be a GUID."
  }
}

variable "location" {
  type        = string
  description = "Azure region, e.g. westeurope."

  validation {
    condition     = can(regex("^[a-z]+[a-z0-9]*$", var.location))
    error_message = "location must be an Azure region name such as westeurope."
  }
}

variable "environment" {
  type        = string
  description = "Environment the stack serves; matches the kustomize overlay (dev-azure or prod-azure)."

  validation {
    condition     = contains(["dev", "prod"], var.environment)
    error_message = "environment must be dev or prod (the overlays are dev-azure and prod-azure)."
  }
}

variable "name" {
  type        = string
  description = "Prefix for resource names."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,30}[a-z0-9]$", var.name))
    error_message = "name must be 4-32 characters of lower-case letters, digits and dashes, starting with a letter."
  }
}

variable "kubernetes_version" {
  type        = string
  description = "AKS Kubernetes minor version."
  default     = "1.34"

  validation {
    condition     = can(regex("^1\\.(3[0-9])$", var.kubernetes_version))
    error_message = "kubernetes_version must look like 1.30 .. 1.39."
  }
}

variable "vnet_cidr" {
  type        = string
  description = "Address space of the cluster VNet."
  default     = "10.50.0.0/16"

  validation {
    condition     = can(cidrhost(var.vnet_cidr, 0)) && tonumber(split("/", var.vnet_cidr)[1]) <= 22
    error_message = "vnet_cidr must be a valid IPv4 CIDR no smaller than /22."
  }
}

variable "sku_tier" {
  type        = string
  description = "AKS control-plane tier (Standard for prod: uptime SLA; Free for dev)."
  default     = "Standard"

  validation {
    condition     = contains(["Free", "Standard", "Premium"], var.sku_tier)
    error_message = "sku_tier must be Free, Standard or Premium."
  }
}

variable "system_vm_size" {
  type        = string
  description = "VM size of the system pool (needs >= 64 GiB cache/temp disk for the ephemeral OS disk)."
  default     = "Standard_D2ds_v5"

  validation {
    condition     = can(regex("^Standard_[A-Za-z0-9_]+$", var.system_vm_size))
    error_message = "system_vm_size must be an Azure VM size like Standard_D2ds_v5."
  }
}

variable "serving_vm_size" {
  type        = string
  description = "VM size of the serving pool (needs >= 128 GiB cache/temp disk for the ephemeral OS disk)."
  default     = "Standard_D4ds_v5"

  validation {
    condition     = can(regex("^Standard_[A-Za-z0-9_]+$", var.serving_vm_size))
    error_message = "serving_vm_size must be an Azure VM size like Standard_D4ds_v5."
  }
}

variable "serving_min_count" {
  type        = number
  description = "Minimum serving nodes in all zones, shared out over one pool per zone (one per zone keeps the zone spread schedulable)."
  default     = 3

  validation {
    condition     = var.serving_min_count >= 1
    error_message = "serving_min_count must be at least 1."
  }
}

variable "serving_max_count" {
  type        = number
  description = "Maximum serving nodes in all zones, shared out over one pool per zone (prod at maxReplicas: 24 serving pods + the platform = 8 nodes)."
  default     = 8

  validation {
    condition     = var.serving_max_count >= 1 && var.serving_max_count <= 50
    error_message = "serving_max_count must be between 1 and 50."
  }
}

variable "host_encryption_enabled" {
  type        = bool
  description = "Encryption at host on every node pool. Register the feature once per subscription first: az feature register --namespace Microsoft.Compute --name EncryptionAtHost (then az provider register -n Microsoft.Compute); set false if you cannot."
  default     = true
}

variable "allowed_ip_ranges" {
  type        = list(string)
  description = "Operator/CI public IPs or CIDRs allowed to the API server, storage, key vault and registry."

  validation {
    condition     = length(var.allowed_ip_ranges) > 0 && alltrue([for c in var.allowed_ip_ranges : can(cidrhost(strcontains(c, "/") ? c : "${c}/32", 0)) && c != "0.0.0.0/0"])
    error_message = "allowed_ip_ranges must be a non-empty list of IPv4 addresses or CIDRs, without 0.0.0.0/0."
  }
}

variable "ingress_source_ranges" {
  type        = list(string)
  description = "Who may reach the scoring endpoint through the Kourier load balancer (TCP 80 and 443): [\"Internet\"] for any caller (the API key is the gate), or the calling platforms' public IPs/CIDRs. The node subnet's NSG refuses every other inbound connection from outside the VNet."
  default     = ["Internet"]

  validation {
    condition = (
      var.ingress_source_ranges == ["Internet"] ||
      (length(var.ingress_source_ranges) > 0 && alltrue([for c in var.ingress_source_ranges : can(cidrhost(strcontains(c, "/") ? c : "${c}/32", 0))]))
    )
    error_message = "ingress_source_ranges must be [\"Internet\"] or a non-empty list of IPv4 addresses or CIDRs (an NSG rule takes a service tag only on its own)."
  }
}

variable "storage_account_name" {
  type        = string
  description = "Globally unique storage account name (3-24 lower-case letters and digits)."

  validation {
    condition     = can(regex("^[a-z0-9]{3,24}$", var.storage_account_name))
    error_message = "storage_account_name must be 3-24 lower-case letters and digits."
  }
}

variable "storage_replication_type" {
  type        = string
  description = "Storage replication (ZRS for prod, LRS acceptable for dev)."
  default     = "ZRS"

  validation {
    condition     = contains(["LRS", "ZRS", "GRS", "GZRS", "RAGRS", "RAGZRS"], var.storage_replication_type)
    error_message = "storage_replication_type must be one of LRS, ZRS, GRS, GZRS, RAGRS, RAGZRS."
  }
}

variable "key_vault_name" {
  type        = string
  description = "Globally unique Key Vault name holding the api-keys secret."

  validation {
    condition     = can(regex("^[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$", var.key_vault_name))
    error_message = "key_vault_name must be 3-24 letters, digits and dashes, starting with a letter."
  }
}

variable "container_registry_name" {
  type        = string
  description = "Globally unique ACR name (5-50 letters and digits)."

  validation {
    condition     = can(regex("^[a-zA-Z0-9]{5,50}$", var.container_registry_name))
    error_message = "container_registry_name must be 5-50 letters and digits."
  }
}

variable "lake_cool_after_days" {
  type        = number
  description = "Days before scored-lead blobs move to the Cool tier."
  default     = 30

  validation {
    condition     = var.lake_cool_after_days >= 1
    error_message = "lake_cool_after_days must be at least 1."
  }
}

variable "lake_delete_after_days" {
  type        = number
  description = "Retention of the scored-lead data lake, in days."
  default     = 400

  validation {
    condition     = var.lake_delete_after_days >= 30
    error_message = "lake_delete_after_days must be at least 30."
  }
}

variable "model_version" {
  type        = string
  description = "Model version folder the overlay's storageUri points at (.../models/lead-scoring/<version>/)."
  default     = "v1"

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9._-]*$", var.model_version))
    error_message = "model_version must be a single path segment of letters, digits, dot, dash or underscore."
  }
}

variable "ingress_domain" {
  type        = string
  description = "DNS domain of the InferenceService hostnames (point a wildcard record at the Kourier load balancer)."
  default     = "example.com"

  validation {
    condition     = can(regex("^([a-z0-9]([a-z0-9-]*[a-z0-9])?\\.)+[a-z]{2,}$", var.ingress_domain))
    error_message = "ingress_domain must be a DNS name like scoring.example.com."
  }
}

variable "install_monitoring" {
  type        = bool
  description = "Install kube-prometheus-stack next to KServe."
  default     = true
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every Azure resource."
  default     = {}
}
