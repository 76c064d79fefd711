variable "name" {
  type        = string
  description = "Prefix for resource names (resource group, cluster, identities). Lower-case letters, digits and dashes."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,30}[a-z0-9]$", var.name))
    error_message = "name must be 4-32 characters of lower-case letters, digits and dashes, starting with a letter."
  }
}

variable "location" {
  type        = string
  description = "Azure region, e.g. westeurope."

  validation {
    condition     = can(regex("^[a-z]+[a-z0-9]*$", var.location))
    error_message = "location must be an Azure region name such as westeurope (lower case, no spaces)."
  }
}

variable "kubernetes_version" {
  type        = string
  description = "AKS Kubernetes minor version, e.g. \"1.34\"."

  validation {
    condition     = can(regex("^1\\.(3[0-9])$", var.kubernetes_version))
    error_message = "kubernetes_version must look like 1.30 .. 1.39."
  }
}

variable "vnet_cidr" {
  type        = string
  description = "Address space of the cluster VNet; the node subnet takes its first half (Azure CNI overlay keeps pod IPs out of it)."

  validation {
    condition     = can(cidrhost(var.vnet_cidr, 0)) && tonumber(split("/", var.vnet_cidr)[1]) <= 22
    error_message = "vnet_cidr must be a valid IPv4 CIDR no smaller than /22."
  }
}

variable "system_vm_size" {
  type        = string
  description = "VM size of the system node pool (critical add-ons only). Must have a temp/cache disk of at least 64 GiB for the ephemeral OS disk (e.g. Standard_D2ds_v5)."

  validation {
    condition     = can(regex("^Standard_[A-Za-z0-9_]+$", var.system_vm_size))
    error_message = "system_vm_size must be an Azure VM size like Standard_D2ds_v5."
  }
}

variable "serving_vm_size" {
  type        = string
  description = "VM size of the serving node pool: fits the predictor (1 CPU / 2 Gi) and the transformer (1 CPU / 1 Gi) with room for Knative's queue-proxy. Needs a temp/cache disk of at least 128 GiB (e.g. Standard_D4ds_v5)."

  validation {
    condition     = can(regex("^Standard_[A-Za-z0-9_]+$", var.serving_vm_size))
    error_message = "serving_vm_size must be an Azure VM size like Standard_D4ds_v5."
  }
}

variable "serving_min_count" {
  type        = number
  description = "Minimum serving nodes in all zones (one autoscaled pool per zone; shared out, rounded up)."

  validation {
    condition     = var.serving_min_count >= 1
    error_message = "serving_min_count must be at least 1."
  }
}

variable "serving_max_count" {
  type        = number
  description = "Maximum serving nodes in all zones (one autoscaled pool per zone; shared out, rounded up)."

  validation {
    condition     = var.serving_max_count >= 1 && var.serving_max_count <= 50
    error_message = "serving_max_count must be between 1 and 50."
  }
}

variable "sku_tier" {
  type        = string
  description = "AKS control-plane tier: Standard carries the uptime SLA (prod), Free is enough for dev."

  validation {
    condition     = contains(["Free", "Standard", "Premium"], var.sku_tier)
    error_message = "sku_tier must be Free, Standard or Premium."
  }
}

variable "allowed_ip_ranges" {
  type        = list(string)
  description = "Public IPs/CIDRs of operators and CI that may reach the Kubernetes API, the storage account, the key vault and the registry. Storage wants bare IPs for single addresses (no /32)."

  validation {
    condition     = length(var.allowed_ip_ranges) > 0 && alltrue([for c in var.allowed_ip_ranges : can(cidrhost(strcontains(c, "/") ? c : "${c}/32", 0)) && c != "0.0.0.0/0"])
    error_message = "allowed_ip_ranges must be a non-empty list of IPv4 addresses or CIDRs and must not contain 0.0.0.0/0."
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
  description = "Globally unique storage account name (3-24 lower-case letters and digits) holding the models and lake containers."

  validation {
    condition     = can(regex("^[a-z0-9]{3,24}$", var.storage_account_name))
    error_message = "storage_account_name must be 3-24 lower-case letters and digits."
  }
}

variable "storage_replication_type" {
  type        = string
  description = "Replication of the storage account (ZRS survives a zone, GZRS also a region)."

  validation {
    condition     = contains(["LRS", "ZRS", "GRS", "GZRS", "RAGRS", "RAGZRS"], var.storage_replication_type)
    error_message = "storage_replication_type must be one of LRS, ZRS, GRS, GZRS, RAGRS, RAGZRS."
  }
}

variable "key_vault_name" {
  type        = string
  description = "Globally unique Key Vault name (3-24 characters: letters, digits, dashes) holding the api-keys secret."

  validation {
    condition     = can(regex("^[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$", var.key_vault_name))
    error_message = "key_vault_name must be 3-24 letters, digits and dashes, starting with a letter."
  }
}

variable "container_registry_name" {
  type        = string
  description = "Globally unique Azure Container Registry name (5-50 letters and digits)."

  validation {
    condition     = can(regex("^[a-zA-Z0-9]{5,50}$", var.container_registry_name))
    error_message = "container_registry_name must be 5-50 letters and digits."
  }
}

variable "lake_cool_after_days" {
  type        = number
  description = "Days after which scored-lead blobs move to the Cool tier."

  validation {
    condition     = var.lake_cool_after_days >= 1
    error_message = "lake_cool_after_days must be at least 1."
  }
}

variable "lake_delete_after_days" {
  type        = number
  description = "Days after which scored-lead blobs are deleted (retention of the data lake)."

  validation {
    condition     = var.lake_delete_after_days >= 30
    error_message = "lake_delete_after_days must be at least 30 (Cool tier minimum retention)."
  }
}

variable "secrets_rotation_poll_interval" {
  type        = string
  description = "How often the AKS Key Vault secrets provider re-reads mounted secrets (rotation without redeploy)."

  validation {
    condition     = can(regex("^[0-9]+(s|m|h)$", var.secrets_rotation_poll_interval))
    error_message = "secrets_rotation_poll_interval must be a Go duration like 120s or 2m."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
}

variable "host_encryption_enabled" {
  type        = bool
  description = "Encryption at host for the node pools (temp disk and caches encrypted). Needs the subscription feature Microsoft.Compute/EncryptionAtHost registered first (docs/terraform.md); set false where it cannot be."
}
