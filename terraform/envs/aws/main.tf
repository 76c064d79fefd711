provider "aws" {
  region = var.region

  default_tags {
    tags = merge(var.tags, {
      project     = "lead-scoring"
      environment = var.environment
      managed-by  = "terraform"
    })
  }
}

# Helm talks to the cluster created in this same root: short-lived tokens from `aws eks get-token`,
# so nothing long-lived lands in the state.
provider "helm" {
  kubernetes = {
    host                   = module.platform.cluster_endpoint
    cluster_ca_certificate = base64decode(module.platform.cluster_certificate_authority_data)
    exec = {
      api_version = "client.authentication.k8s.io/v1beta1"
      command     = "aws"
      args        = ["eks", "get-token", "--region", var.region, "--cluster-name", module.platform.cluster_name]
    }
  }
}

module "platform" {
  source = "../../modules/aws"

  name                         = var.name
  kubernetes_version           = var.kubernetes_version
  vpc_cidr                     = var.vpc_cidr
  availability_zone_count      = var.availability_zone_count
  endpoint_public_access_cidrs = var.endpoint_public_access_cidrs
  node_instance_types          = var.node_instance_types
  node_min_size                = var.node_min_size
  node_desired_size            = var.node_desired_size
  node_max_size                = var.node_max_size
  lake_transition_to_ia_days   = var.lake_transition_to_ia_days
  lake_expiration_days         = var.lake_expiration_days
  force_destroy                = var.force_destroy
  tags                         = var.tags
}

module "kserve_stack" {
  source = "../../modules/kserve-stack"

  # One place for chart pins; see docs/terraform.md for why these fit KServe 0.21.
  cert_manager_version             = "v1.17.2"
  knative_operator_version         = "v1.21.1"
  knative_serving_version          = "1.21.1"
  kserve_version                   = "v0.21.0"
  ingress_domain                   = var.ingress_domain
  private_registry_hosts           = [split("/", module.platform.ecr_repository_url)[0]]
  install_secrets_store_csi_driver = true
  secrets_store_csi_driver_version = "1.5.4"
  secrets_rotation_poll_interval   = "2m"
  install_aws_secrets_provider     = true
  aws_secrets_provider_version     = "2.2.0"
  install_monitoring               = var.install_monitoring
  kube_prometheus_stack_version    = "83.4.0"
}

# Knative scales pods between minReplicas and maxReplicas; without a node autoscaler the pods beyond what the
# initial nodes hold stay Pending. The cluster autoscaler resizes the EKS node group (found by its ASG tags)
# between node_min_size and node_max_size.
resource "helm_release" "cluster_autoscaler" {
  name       = "cluster-autoscaler"
  repository = "https://kubernetes.github.io/autoscaler"
  chart      = "cluster-autoscaler"
  version    = "9.43.1"
  namespace  = "kube-system"
  atomic     = true
  timeout    = 600

  values = [yamlencode({
    # Deployment and service account both "cluster-autoscaler" (the chart would prefix the cloud provider).
    fullnameOverride = "cluster-autoscaler"
    cloudProvider    = "aws"
    awsRegion        = var.region
    autoDiscovery    = { clusterName = module.platform.cluster_name }
    # The autoscaler's minor version must match the cluster's.
    image = { tag = "v${var.kubernetes_version}.0" }
    rbac = {
      serviceAccount = {
        name        = "cluster-autoscaler"
        annotations = { "eks.amazonaws.com/role-arn" = module.platform.cluster_autoscaler_role_arn }
      }
    }
    extraArgs = {
      # The serving node groups are one per zone (modules/aws): keep them the same size.
      "balance-similar-node-groups" = true
      expander                      = "least-waste"
    }
  })]
}
