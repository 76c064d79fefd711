variable "name" {
  type        = string
  description = "Prefix for every resource name (cluster, buckets, roles). Lower-case letters, digits and dashes."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,30}[a-z0-9]$", var.name))
    error_message = "name must be 4-32 characters of lower-case letters, digits and dashes, starting with a letter."
  }
}

variable "kubernetes_version" {
  type        = string
  description = "EKS Kubernetes minor version, e.g. \"1.34\"."

  validation {
    condition     = can(regex("^1\\.(3[0-9])$", var.kubernetes_version))
    error_message = "kubernetes_version must look like 1.30 .. 1.39."
  }
}

variable "vpc_cidr" {
  type        = string
  description = "CIDR of the VPC the cluster lives in (a /16 leaves room for pods with the VPC CNI)."

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && tonumber(split("/", var.vpc_cidr)[1]) <= 20
    error_message = "vpc_cidr must be a valid IPv4 CIDR no smaller than /20."
  }
}

variable "availability_zone_count" {
  type        = number
  description = "How many availability zones to spread subnets and nodes over."

  validation {
    condition     = var.availability_zone_count >= 2 && var.availability_zone_count <= 3
    error_message = "availability_zone_count must be 2 or 3 (EKS needs at least two)."
  }
}

variable "node_instance_types" {
  type        = list(string)
  description = "Instance types of the managed node group. Each serving pod requests 0.7 CPU + 25m for its queue-proxy; a 4-vCPU type fits four of them next to the daemon sets (docs/kubernetes.md, Capacity)."

  validation {
    condition     = length(var.node_instance_types) > 0 && alltrue([for t in var.node_instance_types : can(regex("^[a-z][a-z0-9-]*\\.[0-9]*x?large$", t))])
    error_message = "node_instance_types must be a non-empty list of EC2 instance types of size large or bigger (e.g. m7i.large)."
  }
}

variable "node_min_size" {
  type        = number
  description = "Minimum number of serving nodes in all zones (shared out per zone node group, rounded up)."

  validation {
    condition     = var.node_min_size >= 1
    error_message = "node_min_size must be at least 1."
  }
}

variable "node_desired_size" {
  type        = number
  description = "Initial number of serving nodes in all zones (shared out per zone, rounded up; the cluster autoscaler, if any, moves it afterwards)."

  validation {
    condition     = var.node_desired_size >= 1
    error_message = "node_desired_size must be at least 1."
  }
}

variable "node_max_size" {
  type        = number
  description = "Maximum number of serving nodes in all zones (shared out per zone node group, rounded up)."

  validation {
    condition     = var.node_max_size >= 1 && var.node_max_size <= 50
    error_message = "node_max_size must be between 1 and 50."
  }
}

variable "endpoint_public_access_cidrs" {
  type        = list(string)
  description = "CIDRs allowed to reach the public Kubernetes API endpoint (your office / CI egress). Empty disables the public endpoint."

  validation {
    condition     = alltrue([for c in var.endpoint_public_access_cidrs : can(cidrhost(c, 0)) && c != "0.0.0.0/0"])
    error_message = "endpoint_public_access_cidrs must be valid CIDRs and must not be 0.0.0.0/0."
  }
}

variable "lake_transition_to_ia_days" {
  type        = number
  description = "Days after which scored-lead Parquet objects move to S3 Standard-IA."

  validation {
    condition     = var.lake_transition_to_ia_days >= 30
    error_message = "S3 requires at least 30 days before a transition to STANDARD_IA."
  }
}

variable "lake_expiration_days" {
  type        = number
  description = "Days after which scored-lead Parquet objects are deleted (retention of the data lake)."

  validation {
    condition     = var.lake_expiration_days >= 31
    error_message = "lake_expiration_days must be larger than the IA transition minimum (31 days or more)."
  }
}

variable "force_destroy" {
  type        = bool
  description = "Allow terraform destroy to empty and delete the buckets and the ECR repository (dev only)."
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
}
