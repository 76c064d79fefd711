# AWS side of the lead-scoring platform: network, EKS, artifact and lake buckets, image registry,
# the API-key secret and one IRSA role per service account. Kubernetes objects live in kustomize/.

# Allow-list the zones by name so the subnet layout cannot change when AWS adds a zone.
data "aws_availability_zones" "available" {
  state = "available"

  filter {
    name   = "zone-name"
    values = [for suffix in ["a", "b", "c"] : "${data.aws_region.current.region}${suffix}"]
  }
}

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "current" {}

locals {
  azs = slice(data.aws_availability_zones.available.names, 0, var.availability_zone_count)

  # Contract names (see the project contract): overlays and IAM trust must agree on them exactly.
  namespace                   = "lead-scoring"
  predictor_service_account   = "lead-scoring-predictor"
  transformer_service_account = "lead-scoring-transformer"
  batch_service_account       = "lead-scoring-batch"

  model_prefix = "lead-scoring/"
  lake_prefix  = "scores/"
  # Batch scoring (docs/batch.md): CRM exports are put under exports/ of the lake bucket, runs write under batch/.
  exports_prefix = "exports/"
  batch_prefix   = "batch/"

  tags = merge(var.tags, { "app.kubernetes.io/part-of" = "lead-scoring" })
}

################################################################################
# Network and cluster (registry modules, pinned)
################################################################################

module "vpc" {
  source  = "terraform-aws-modules/vpc/aws"
  version = "6.5.0"

  name = var.name
  cidr = var.vpc_cidr
  azs  = local.azs

  # /20 private subnets: the VPC CNI gives every pod a VPC address.
  private_subnets = [for i, _ in local.azs : cidrsubnet(var.vpc_cidr, 4, i)]
  public_subnets  = [for i, _ in local.azs : cidrsubnet(var.vpc_cidr, 8, 200 + i)]

  enable_nat_gateway = true
  single_nat_gateway = true

  enable_flow_log                      = true
  create_flow_log_cloudwatch_log_group = true
  create_flow_log_cloudwatch_iam_role  = true

  public_subnet_tags  = { "kubernetes.io/role/elb" = 1 }
  private_subnet_tags = { "kubernetes.io/role/internal-elb" = 1 }

  tags = local.tags
}

module "eks" {
  source  = "terraform-aws-modules/eks/aws"
  version = "21.20.0"

  name               = var.name
  kubernetes_version = var.kubernetes_version

  endpoint_private_access      = true
  endpoint_public_access       = length(var.endpoint_public_access_cidrs) > 0
  endpoint_public_access_cidrs = var.endpoint_public_access_cidrs

  enable_cluster_creator_admin_permissions = true
  # IRSA: the OIDC provider the two service-account roles below trust.
  enable_irsa = true

  addons = {
    coredns    = {}
    kube-proxy = {}
    vpc-cni = {
      before_compute = true
    }
  }

  vpc_id                   = module.vpc.vpc_id
  subnet_ids               = module.vpc.private_subnets
  control_plane_subnet_ids = module.vpc.private_subnets

  # One node group per zone. The cluster autoscaler simulates a new node of a group from one template, labelled
  # with the group's first zone: a group spanning zones could never add a node for a pod that the InferenceService's
  # zone spread (whenUnsatisfiable: DoNotSchedule) sends to another zone, and that pod would stay Pending. The
  # totals (node_*_size) are shared out per zone, rounded up; balance-similar-node-groups (envs/aws) keeps the
  # groups level.
  eks_managed_node_groups = {
    for i, az in local.azs : "serving-${substr(az, -1, 1)}" => {
      ami_type       = "AL2023_x86_64_STANDARD"
      instance_types = var.node_instance_types
      subnet_ids     = [module.vpc.private_subnets[i]]
      min_size       = ceil(var.node_min_size / length(local.azs))
      desired_size   = ceil(var.node_desired_size / length(local.azs))
      max_size       = ceil(var.node_max_size / length(local.azs))

      labels = { "lead-scoring/pool" = "serving" }
      # EKS tags each node group's Auto Scaling group with k8s.io/cluster-autoscaler/enabled and
      # k8s.io/cluster-autoscaler/<cluster>: the cluster autoscaler (envs/aws) discovers them by those tags.
    }
  }

  tags = local.tags
}

# Pods reach S3 (models, lake, and the ECR image layers, which ECR serves from S3) through this gateway
# endpoint instead of the NAT gateway: no per-GB NAT charge on the data lake and the image pulls. Everything
# else a pod calls (ECR API, Secrets Manager, STS for IRSA, KMS) goes out through the NAT gateway; no bucket,
# repository or secret policy here restricts by network, so both paths are allowed.
resource "aws_vpc_endpoint" "s3" {
  vpc_id            = module.vpc.vpc_id
  service_name      = "com.amazonaws.${data.aws_region.current.region}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = module.vpc.private_route_table_ids
  tags              = local.tags
}

################################################################################
# Encryption key for data at rest (buckets, registry, secret)
################################################################################

resource "aws_kms_key" "data" {
  description             = "${var.name}: models, data lake, images and API keys"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  # A key policy, not an IAM policy: "*" here means "this key". The account administers and uses
  # the key through IAM; the IRSA policies below name this key explicitly.
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "AccountAdministers"
      Effect    = "Allow"
      Principal = { AWS = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root" }
      Action    = "kms:*"
      Resource  = "*"
    }]
  })
  tags = local.tags
}

resource "aws_kms_alias" "data" {
  name          = "alias/${var.name}-data"
  target_key_id = aws_kms_key.data.key_id
}

################################################################################
# S3: model artifacts and the scored-lead data lake
################################################################################

resource "aws_s3_bucket" "models" {
  bucket_prefix = "${var.name}-models-"
  force_destroy = var.force_destroy
  tags          = local.tags
}

resource "aws_s3_bucket" "lake" {
  bucket_prefix = "${var.name}-lake-"
  force_destroy = var.force_destroy
  tags          = local.tags
}

locals {
  buckets = {
    models = aws_s3_bucket.models
    lake   = aws_s3_bucket.lake
  }
}

resource "aws_s3_bucket_public_access_block" "this" {
  for_each = local.buckets

  bucket                  = each.value.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "this" {
  for_each = local.buckets

  bucket = each.value.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_versioning" "this" {
  for_each = local.buckets

  bucket = each.value.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  for_each = local.buckets

  bucket = each.value.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.data.arn
    }
    # Bucket keys cut KMS calls (and cost) for the many small Parquet files of the lake.
    bucket_key_enabled = true
  }
}

data "aws_iam_policy_document" "tls_only" {
  for_each = local.buckets

  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      each.value.arn,
      "${each.value.arn}/*",
    ]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "tls_only" {
  for_each = local.buckets

  bucket = each.value.id
  policy = data.aws_iam_policy_document.tls_only[each.key].json

  depends_on = [aws_s3_bucket_public_access_block.this]
}

resource "aws_s3_bucket_lifecycle_configuration" "models" {
  bucket = aws_s3_bucket.models.id

  # Model versions are kept by path (lead-scoring/<version>/); old object versions only guard
  # against an accidental overwrite, so they can go after a quarter.
  rule {
    id     = "expire-noncurrent-versions"
    status = "Enabled"
    filter {}

    noncurrent_version_expiration {
      noncurrent_days = 90
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  depends_on = [aws_s3_bucket_versioning.this]
}

resource "aws_s3_bucket_lifecycle_configuration" "lake" {
  bucket = aws_s3_bucket.lake.id

  rule {
    id     = "age-scored-leads"
    status = "Enabled"

    filter {
      prefix = local.lake_prefix
    }

    transition {
      days          = var.lake_transition_to_ia_days
      storage_class = "STANDARD_IA"
    }

    expiration {
      days = var.lake_expiration_days
    }

    noncurrent_version_expiration {
      noncurrent_days = 30
    }
  }

  # The sink uploads in one PUT, but a killed multipart upload must not linger and cost money.
  rule {
    id     = "abort-incomplete-uploads"
    status = "Enabled"
    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = 2
    }
  }

  depends_on = [aws_s3_bucket_versioning.this]
}

################################################################################
# ECR: the transformer image (the predictor is KServe's stock xgbserver image)
################################################################################

resource "aws_ecr_repository" "transformer" {
  name                 = "${var.name}/transformer"
  image_tag_mutability = "IMMUTABLE"
  force_delete         = var.force_destroy

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = aws_kms_key.data.arn
  }

  tags = local.tags
}

resource "aws_ecr_lifecycle_policy" "transformer" {
  repository = aws_ecr_repository.transformer.name
  policy = jsonencode({
    rules = [{
      rulePriority = 1
      description  = "Keep the 30 most recent images"
      selection = {
        tagStatus   = "any"
        countType   = "imageCountMoreThan"
        countNumber = 30
      }
      action = { type = "expire" }
    }]
  })
}

################################################################################
# Secrets Manager: API keys (value is put by an operator, never by Terraform)
################################################################################

# Named after the stack, like every other resource here: a dev and a prod stack in one account and region would
# otherwise both claim one name, and the second apply fail (as would a re-apply within the 7-day recovery window
# after a destroy, since a deleted name stays taken until it ends).
resource "aws_secretsmanager_secret" "api_keys" {
  name                    = "${var.name}/api-keys"
  description             = "API keys file (YAML, see the project contract) mounted into the transformer by the Secrets Store CSI driver."
  kms_key_id              = aws_kms_key.data.arn
  recovery_window_in_days = 7
  tags                    = local.tags
}

################################################################################
# IRSA: one role per service account, least privilege
################################################################################

# Each app role trusts exactly one service account of the namespace (the token's `sub`), and only tokens minted for
# STS (`aud`). One document per component, keyed like the roles below.
data "aws_iam_policy_document" "app_trust" {
  for_each = {
    predictor   = local.predictor_service_account
    transformer = local.transformer_service_account
    batch       = local.batch_service_account
  }

  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = [module.eks.oidc_provider_arn]
    }

    condition {
      test     = "StringEquals"
      variable = "${module.eks.oidc_provider}:sub"
      values   = ["system:serviceaccount:${local.namespace}:${each.value}"]
    }

    condition {
      test     = "StringEquals"
      variable = "${module.eks.oidc_provider}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

# Read the model artifacts (booster + model card) under lead-scoring/ only.
data "aws_iam_policy_document" "predictor" {
  # kserve-storage calls HeadBucket before it lists, and HeadBucket is an s3:ListBucket request with no s3:prefix:
  # a plain StringLike would refuse it (a missing key fails the test) and no pod could download its model.
  # IfExists lets the prefix-less HeadBucket through and still holds every list that names a prefix to this one;
  # objects stay readable only under the prefix (ReadModels).
  statement {
    sid       = "ListModelPrefix"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.models.arn]

    condition {
      test     = "StringLikeIfExists"
      variable = "s3:prefix"
      values   = [local.model_prefix, "${local.model_prefix}*"]
    }
  }

  statement {
    sid       = "ReadModels"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.models.arn}/${local.model_prefix}*"]
  }

  statement {
    sid       = "DecryptModels"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.data.arn]
  }
}

# Read the model card, write Parquet under scores/ (no read-back, no delete), read the API keys.
data "aws_iam_policy_document" "transformer" {
  source_policy_documents = [data.aws_iam_policy_document.predictor.json]

  statement {
    sid = "WriteLakePrefix"
    actions = [
      "s3:PutObject",
      "s3:AbortMultipartUpload",
      "s3:ListMultipartUploadParts",
    ]
    resources = ["${aws_s3_bucket.lake.arn}/${local.lake_prefix}*"]
  }

  statement {
    sid       = "EncryptLake"
    actions   = ["kms:GenerateDataKey"]
    resources = [aws_kms_key.data.arn]
  }

  statement {
    sid       = "ReadApiKeys"
    actions   = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
    resources = [aws_secretsmanager_secret.api_keys.arn]
  }
}

# The batch Job (kustomize/components/batch-job): read the model folder, read CRM exports under exports/, write a
# run's objects under batch/ and read them back (markers, manifest). Not the online lake (scores/), not the keys.
data "aws_iam_policy_document" "batch" {
  source_policy_documents = [data.aws_iam_policy_document.predictor.json]

  # Listing finds the export's files and the run's markers; IfExists for the prefix-less HeadBucket (see predictor).
  statement {
    sid       = "ListExportsAndRuns"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.lake.arn]

    condition {
      test     = "StringLikeIfExists"
      variable = "s3:prefix"
      values   = [local.exports_prefix, "${local.exports_prefix}*", local.batch_prefix, "${local.batch_prefix}*"]
    }
  }

  statement {
    sid       = "ReadExportsAndRuns"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.lake.arn}/${local.exports_prefix}*", "${aws_s3_bucket.lake.arn}/${local.batch_prefix}*"]
  }

  statement {
    sid = "WriteRuns"
    actions = [
      "s3:PutObject",
      "s3:AbortMultipartUpload",
      "s3:ListMultipartUploadParts",
    ]
    resources = ["${aws_s3_bucket.lake.arn}/${local.batch_prefix}*"]
  }

  statement {
    sid       = "EncryptRuns"
    actions   = ["kms:GenerateDataKey"]
    resources = [aws_kms_key.data.arn]
  }
}

resource "aws_iam_role" "predictor" {
  name                 = "${var.name}-predictor"
  description          = "IRSA role of ${local.namespace}/${local.predictor_service_account}"
  assume_role_policy   = data.aws_iam_policy_document.app_trust["predictor"].json
  max_session_duration = 3600
  tags                 = local.tags
}

resource "aws_iam_role_policy" "predictor" {
  name   = "read-models"
  role   = aws_iam_role.predictor.id
  policy = data.aws_iam_policy_document.predictor.json
}

resource "aws_iam_role" "transformer" {
  name                 = "${var.name}-transformer"
  description          = "IRSA role of ${local.namespace}/${local.transformer_service_account}"
  assume_role_policy   = data.aws_iam_policy_document.app_trust["transformer"].json
  max_session_duration = 3600
  tags                 = local.tags
}

resource "aws_iam_role_policy" "transformer" {
  name   = "read-models-write-lake-read-keys"
  role   = aws_iam_role.transformer.id
  policy = data.aws_iam_policy_document.transformer.json
}

resource "aws_iam_role" "batch" {
  name                 = "${var.name}-batch"
  description          = "IRSA role of ${local.namespace}/${local.batch_service_account}"
  assume_role_policy   = data.aws_iam_policy_document.app_trust["batch"].json
  max_session_duration = 3600
  tags                 = local.tags
}

resource "aws_iam_role_policy" "batch" {
  name   = "read-models-and-exports-write-batch-runs"
  role   = aws_iam_role.batch.id
  policy = data.aws_iam_policy_document.batch.json
}

################################################################################
# Cluster autoscaler (installed by envs/aws): Knative adds pods, this adds nodes
################################################################################

data "aws_iam_policy_document" "cluster_autoscaler_trust" {
  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = [module.eks.oidc_provider_arn]
    }

    condition {
      test     = "StringEquals"
      variable = "${module.eks.oidc_provider}:sub"
      values   = ["system:serviceaccount:${local.cluster_autoscaler_namespace}:${local.cluster_autoscaler_service_account}"]
    }

    condition {
      test     = "StringEquals"
      variable = "${module.eks.oidc_provider}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

locals {
  cluster_autoscaler_namespace       = "kube-system"
  cluster_autoscaler_service_account = "cluster-autoscaler"
}

# Read the groups and instance types; change the size only of this cluster's tagged groups.
data "aws_iam_policy_document" "cluster_autoscaler" {
  statement {
    sid = "Discover"
    actions = [
      "autoscaling:DescribeAutoScalingGroups",
      "autoscaling:DescribeAutoScalingInstances",
      "autoscaling:DescribeLaunchConfigurations",
      "autoscaling:DescribeScalingActivities",
      "autoscaling:DescribeTags",
      "ec2:DescribeImages",
      "ec2:DescribeInstanceTypes",
      "ec2:DescribeLaunchTemplateVersions",
      "ec2:GetInstanceTypesFromInstanceRequirements",
    ]
    resources = ["*"]
  }

  statement {
    sid       = "DescribeOwnNodegroups"
    actions   = ["eks:DescribeNodegroup"]
    resources = ["arn:${data.aws_partition.current.partition}:eks:${data.aws_region.current.region}:${data.aws_caller_identity.current.account_id}:nodegroup/${module.eks.cluster_name}/*"]
  }

  statement {
    sid = "ResizeOwnGroups"
    actions = [
      "autoscaling:SetDesiredCapacity",
      "autoscaling:TerminateInstanceInAutoScalingGroup",
    ]
    resources = ["arn:${data.aws_partition.current.partition}:autoscaling:${data.aws_region.current.region}:${data.aws_caller_identity.current.account_id}:autoScalingGroup:*:autoScalingGroupName/*"]

    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/k8s.io/cluster-autoscaler/${module.eks.cluster_name}"
      values   = ["owned"]
    }
  }
}

resource "aws_iam_role" "cluster_autoscaler" {
  name                 = "${var.name}-cluster-autoscaler"
  description          = "IRSA role of ${local.cluster_autoscaler_namespace}/${local.cluster_autoscaler_service_account}"
  assume_role_policy   = data.aws_iam_policy_document.cluster_autoscaler_trust.json
  max_session_duration = 3600
  tags                 = local.tags
}

resource "aws_iam_role_policy" "cluster_autoscaler" {
  name   = "resize-own-node-groups"
  role   = aws_iam_role.cluster_autoscaler.id
  policy = data.aws_iam_policy_document.cluster_autoscaler.json
}
