variable "region" {
  type        = string
  description = "AWS region to deploy into."

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must be an AWS region name such as eu-west-1."
  }
}

variable "environment" {
  type        = string
  description = "Environment the stack serves; matches the kustomize overlay (dev-aws or prod-aws)."

  validation {
    condition     = contains(["dev", "prod"], var.environment)
    error_message = "environment must be dev or prod (the overlays are dev-aws and prod-aws)."
  }
}

variable "name" {
  type        = string
  description = "Prefix for every resource name."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,30}[a-z0-9]$", var.name))
    error_message = "name must be 4-32 characters of lower-case letters, digits and dashes, starting with a letter."
  }
}

variable "kubernetes_version" {
  type        = string
  description = "EKS Kubernetes minor version."
  default     = "1.34"

  validation {
    condition     = can(regex("^1\\.(3[0-9])$", var.kubernetes_version))
    error_message = "kubernetes_version must look like 1.30 .. 1.39."
  }
}

variable "vpc_cidr" {
  type        = string
  description = "CIDR of the cluster VPC."
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && tonumber(split("/", var.vpc_cidr)[1]) <= 20
    error_message = "vpc_cidr must be a valid IPv4 CIDR no smaller than /20."
  }
}

variable "availability_zone_count" {
  type        = number
  description = "Number of availability zones (2 or 3)."
  default     = 3

  validation {
    condition     = var.availability_zone_count >= 2 && var.availability_zone_count <= 3
    error_message = "availability_zone_count must be 2 or 3."
  }
}

variable "endpoint_public_access_cidrs" {
  type        = list(string)
  description = "CIDRs allowed to reach the public Kubernetes API (operators, CI). Empty makes the API private-only."

  validation {
    condition     = alltrue([for c in var.endpoint_public_access_cidrs : can(cidrhost(c, 0)) && c != "0.0.0.0/0"])
    error_message = "endpoint_public_access_cidrs must be valid CIDRs and must not be 0.0.0.0/0."
  }
}

variable "node_instance_types" {
  type        = list(string)
  description = "EC2 instance types of the serving node group (4 vCPU fits four serving pods next to the daemon sets)."
  default     = ["m7i.xlarge"]

  validation {
    condition     = length(var.node_instance_types) > 0 && alltrue([for t in var.node_instance_types : can(regex("^[a-z][a-z0-9-]*\\.[0-9]*x?large$", t))])
    error_message = "node_instance_types must be EC2 types of size large or bigger, e.g. m7i.large."
  }
}

variable "node_min_size" {
  type        = number
  description = "Minimum serving nodes in all zones, shared out over one node group per zone (one per zone keeps the zone spread schedulable)."
  default     = 3

  validation {
    condition     = var.node_min_size >= 1
    error_message = "node_min_size must be at least 1."
  }
}

variable "node_desired_size" {
  type        = number
  description = "Initial serving nodes in all zones, shared out over one node group per zone."
  default     = 3

  validation {
    condition     = var.node_desired_size >= 1
    error_message = "node_desired_size must be at least 1."
  }
}

variable "node_max_size" {
  type        = number
  description = "Maximum serving nodes in all zones, shared out over one node group per zone (prod at maxReplicas: 24 serving pods + the platform = 8 nodes)."
  default     = 9

  validation {
    condition     = var.node_max_size >= 1 && var.node_max_size <= 50
    error_message = "node_max_size must be between 1 and 50."
  }
}

variable "lake_transition_to_ia_days" {
  type        = number
  description = "Days before scored-lead Parquet moves to S3 Standard-IA."
  default     = 30

  validation {
    condition     = var.lake_transition_to_ia_days >= 30
    error_message = "S3 needs at least 30 days before STANDARD_IA."
  }
}

variable "lake_expiration_days" {
  type        = number
  description = "Retention of the scored-lead data lake, in days."
  default     = 400

  validation {
    condition     = var.lake_expiration_days >= 31
    error_message = "lake_expiration_days must be at least 31."
  }
}

variable "force_destroy" {
  type        = bool
  description = "Let terraform destroy delete non-empty buckets and the ECR repository (dev only)."
  default     = false
}

variable "model_version" {
  type        = string
  description = "Model version folder the overlay's storageUri points at (s3://<models_bucket>/lead-scoring/<version>/)."
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
  description = "Tags added to every AWS resource."
  default     = {}
}
