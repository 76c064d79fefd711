# Cluster software shared by EKS and AKS: cert-manager -> Knative Serving (Kourier) -> KServe,
# the Secrets Store CSI driver (plus the AWS provider on EKS) and, optionally, monitoring.
# Every chart version is pinned through a variable; the roots set them in one place.

locals {
  kourier_ingress_class = "kourier.ingress.networking.knative.dev"
}

resource "helm_release" "cert_manager" {
  name             = "cert-manager"
  repository       = "https://charts.jetstack.io"
  chart            = "cert-manager"
  version          = var.cert_manager_version
  namespace        = "cert-manager"
  create_namespace = true
  atomic           = true
  timeout          = 600

  values = [yamlencode({
    crds = { enabled = true }
  })]
}

resource "helm_release" "knative_operator" {
  name             = "knative-operator"
  repository       = "https://knative.github.io/operator"
  chart            = "knative-operator"
  version          = var.knative_operator_version
  namespace        = "knative-operator"
  create_namespace = true
  atomic           = true
  timeout          = 600
}

# The KnativeServing custom resource, shipped as a tiny local chart: a helm_release (unlike
# kubernetes_manifest) does not need the operator's CRD to exist at plan time. The chart's config-features
# (charts/knative-serving/values.yaml) enable the pod-spec fields the InferenceService uses, and its
# post-install hook holds the release until the KnativeServing is Ready (wait stays on: the default).
resource "helm_release" "knative_serving" {
  name             = "knative-serving"
  chart            = "${path.module}/charts/knative-serving"
  namespace        = "knative-serving"
  create_namespace = true
  atomic           = true
  timeout          = 900

  values = [yamlencode({
    servingVersion = var.knative_serving_version
    ingressDomain  = var.ingress_domain
    ingressClass   = local.kourier_ingress_class
    registriesSkippingTagResolving = concat(
      ["kind.local", "ko.local", "dev.local"],
      var.private_registry_hosts,
    )
  })]

  depends_on = [helm_release.knative_operator]
}

resource "helm_release" "kserve_crd" {
  name             = "kserve-crd"
  repository       = "oci://ghcr.io/kserve/charts"
  chart            = "kserve-crd"
  version          = var.kserve_version
  namespace        = "kserve"
  create_namespace = true
  atomic           = true
  timeout          = 600
}

resource "helm_release" "kserve" {
  name       = "kserve"
  repository = "oci://ghcr.io/kserve/charts"
  chart      = "kserve-resources"
  version    = var.kserve_version
  namespace  = "kserve"
  atomic     = true
  timeout    = 900

  values = [yamlencode({
    kserve = {
      controller = {
        # The name KServe documents since 0.16 ("Serverless" is its deprecated alias).
        deploymentMode = "Knative"
        gateway = {
          # Kourier, not Istio: KServe must not create Istio VirtualServices.
          disableIstioVirtualHost = true
          domain                  = var.ingress_domain
        }
      }
    }
  })]

  # knative_serving completes only once the KnativeServing is Ready (its hook job): KServe's controller checks
  # for the Knative Service CRD once at start-up and would otherwise never watch Knative Services.
  depends_on = [
    helm_release.cert_manager,
    helm_release.knative_serving,
    helm_release.kserve_crd,
  ]
}

# ClusterServingRuntimes, among them kserve-xgbserver (modelFormat xgboost, protocol v2),
# which the lead-scoring predictor selects.
resource "helm_release" "kserve_runtimes" {
  name       = "kserve-runtime-configs"
  repository = "oci://ghcr.io/kserve/charts"
  chart      = "kserve-runtime-configs"
  version    = var.kserve_version
  namespace  = "kserve"
  atomic     = true
  timeout    = 600

  values = [yamlencode({
    kserve = {
      servingruntime = { enabled = true }
    }
  })]

  depends_on = [helm_release.kserve]
}

resource "helm_release" "secrets_store_csi_driver" {
  count = var.install_secrets_store_csi_driver ? 1 : 0

  name       = "secrets-store-csi-driver"
  repository = "https://kubernetes-sigs.github.io/secrets-store-csi-driver/charts"
  chart      = "secrets-store-csi-driver"
  version    = var.secrets_store_csi_driver_version
  namespace  = "kube-system"
  atomic     = true
  timeout    = 600

  values = [yamlencode({
    # Rotation: the driver re-reads the store every poll interval and rewrites the mounted
    # file; the transformer reloads its key file, so no redeploy is needed.
    enableSecretRotation = true
    rotationPollInterval = var.secrets_rotation_poll_interval
    # File mount only: the keys never become a Kubernetes Secret in etcd.
    syncSecret = { enabled = false }
  })]
}

resource "helm_release" "aws_secrets_provider" {
  count = var.install_aws_secrets_provider ? 1 : 0

  name       = "secrets-store-csi-driver-provider-aws"
  repository = "https://aws.github.io/secrets-store-csi-driver-provider-aws"
  chart      = "secrets-store-csi-driver-provider-aws"
  version    = var.aws_secrets_provider_version
  namespace  = "kube-system"
  atomic     = true
  timeout    = 600

  values = [yamlencode({
    # The driver is the release above, pinned on its own; do not let the subchart install a second one.
    "secrets-store-csi-driver" = { install = false }
  })]

  depends_on = [helm_release.secrets_store_csi_driver]
}

resource "helm_release" "kube_prometheus_stack" {
  count = var.install_monitoring ? 1 : 0

  name             = "kube-prometheus-stack"
  repository       = "https://prometheus-community.github.io/helm-charts"
  chart            = "kube-prometheus-stack"
  version          = var.kube_prometheus_stack_version
  namespace        = "monitoring"
  create_namespace = true
  atomic           = true
  timeout          = 900

  values = [yamlencode({
    prometheus = {
      prometheusSpec = {
        # Pick up the ServiceMonitors/PodMonitors the lead-scoring overlays ship, whatever their labels.
        serviceMonitorSelectorNilUsesHelmValues = false
        podMonitorSelectorNilUsesHelmValues     = false
        ruleSelectorNilUsesHelmValues           = false
      }
    }
  })]
}
