#!/usr/bin/env bash
# A local kind cluster with everything fraudops runs on, then the platform itself (`make cluster`):
#
#   bash hack/cluster.sh up      # kind cluster + cert-manager, Strimzi, KEDA, KServe (Standard mode),
#                                # kube-prometheus-stack + `skaffold run -p kind`
#   bash hack/cluster.sh down    # delete the kind cluster
#
# Needs Docker, kind, kubectl and internet access (the releases below are downloaded from their
# projects). helm and skaffold come from .cache/tools/bin (make tools) unless HELM / SKAFFOLD say
# otherwise. Every release is pinned; the versions match the upstream CRDs the tests validate against
# (third_party/upstream-crds/SOURCES.md). Not runnable on the development machine (no internet there).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
CLUSTER=fraudops
CONTEXT="kind-$CLUSTER"
HELM="${HELM:-$ROOT/.cache/tools/bin/helm}"
SKAFFOLD="${SKAFFOLD:-$ROOT/.cache/tools/bin/skaffold}"

CERT_MANAGER_VERSION=v1.19.1
STRIMZI_VERSION=1.2.0
KEDA_VERSION=2.20.2
KSERVE_VERSION=v0.20.0
KUBE_PROMETHEUS_STACK_VERSION=88.0.0   # Prometheus Operator v0.93.0

log() { printf '\ncluster: %s\n' "$*"; }
need() { command -v "$1" >/dev/null 2>&1 || { echo "cluster: '$1' is required ($2)" >&2; exit 1; }; }
helm_() { "$HELM" --kube-context "$CONTEXT" "$@"; }
kubectl_() { kubectl --context "$CONTEXT" "$@"; }

up() {
    need docker "a running Docker engine"; need kind "https://kind.sigs.k8s.io"; need kubectl "kubectl"
    [ -x "$HELM" ] && [ -x "$SKAFFOLD" ] || make -C "$ROOT" tools

    if kind get clusters | grep -qx "$CLUSTER"; then
        log "kind cluster $CLUSTER exists"
    else
        log "creating kind cluster $CLUSTER (manifests/kind/cluster.yaml)"
        kind create cluster --config "$ROOT/manifests/kind/cluster.yaml" --wait 120s
    fi

    log "cert-manager $CERT_MANAGER_VERSION (KServe's webhook certificates)"
    helm_ upgrade --install cert-manager cert-manager --repo https://charts.jetstack.io \
        --version "$CERT_MANAGER_VERSION" --namespace cert-manager --create-namespace \
        --set crds.enabled=true --wait --timeout 5m

    log "Strimzi $STRIMZI_VERSION (Kafka in KRaft mode, topics, users)"
    # Strimzi's restricted pod-security provider: its broker pods pass the namespace's restricted standard.
    helm_ upgrade --install strimzi oci://quay.io/strimzi-helm/strimzi-kafka-operator \
        --version "$STRIMZI_VERSION" --namespace strimzi --create-namespace \
        --set watchAnyNamespace=true \
        --set-json 'extraEnvs=[{"name":"STRIMZI_POD_SECURITY_PROVIDER_CLASS","value":"restricted"}]' \
        --wait --timeout 5m

    log "KEDA $KEDA_VERSION (scales the stream consumers on Kafka lag)"
    helm_ upgrade --install keda keda --repo https://kedacore.github.io/charts --version "$KEDA_VERSION" \
        --namespace keda --create-namespace --wait --timeout 5m

    log "KServe $KSERVE_VERSION in Standard mode (plain Deployments, no Knative or Istio)"
    kubectl_ apply --server-side --force-conflicts \
        -f "https://github.com/kserve/kserve/releases/download/$KSERVE_VERSION/kserve.yaml"
    kubectl_ -n kserve rollout status deployment/kserve-controller-manager --timeout 5m
    kubectl_ apply --server-side --force-conflicts \
        -f "https://github.com/kserve/kserve/releases/download/$KSERVE_VERSION/kserve-cluster-resources.yaml"
    kubectl_ -n kserve patch configmap inferenceservice-config --type merge \
        -p '{"data":{"deploy":"{\"defaultDeploymentMode\": \"Standard\"}"}}'

    log "kube-prometheus-stack $KUBE_PROMETHEUS_STACK_VERSION (Prometheus for the canary analysis, Grafana)"
    helm_ upgrade --install kube-prometheus-stack kube-prometheus-stack \
        --repo https://prometheus-community.github.io/helm-charts --version "$KUBE_PROMETHEUS_STACK_VERSION" \
        --namespace monitoring --create-namespace \
        --set grafana.service.type=NodePort --set grafana.service.nodePort=30300 \
        --set prometheus.prometheusSpec.podMonitorSelectorNilUsesHelmValues=false \
        --set prometheus.prometheusSpec.serviceMonitorSelectorNilUsesHelmValues=false \
        --wait --timeout 10m

    # Enforce baseline and warn on restricted: every pod of the charts and of the operator meets restricted
    # (tested), but KServe injects its own storage-initializer container into predictor pods.
    log "the platform's namespace: Pod Security baseline enforced, restricted warned"
    kubectl_ create namespace fraud --dry-run=client -o yaml | kubectl_ apply -f -
    kubectl_ label namespace fraud --overwrite pod-security.kubernetes.io/enforce=baseline \
        pod-security.kubernetes.io/warn=restricted

    log "building the images and deploying both charts (skaffold run -p kind)"
    (cd "$ROOT" && PATH="$(dirname "$HELM"):$PATH" "$SKAFFOLD" run -p kind --kube-context "$CONTEXT")

    cat <<NEXT

cluster: ready. Next:
  kubectl --context $CONTEXT apply -f manifests/samples/          # a FraudModel and a TrainingRun in namespace fraud
  kubectl --context $CONTEXT -n fraud get fraudmodels,trainingruns,inferenceservices,scaledobjects,kafkatopics -w
  curl -s localhost:8000/health/ready                              # the gateway (node port 30800)
  Grafana: http://localhost:3000 (admin / prom-operator)
NEXT
}

down() {
    need kind "https://kind.sigs.k8s.io"
    if kind get clusters | grep -qx "$CLUSTER"; then
        kind delete cluster --name "$CLUSTER"
    else
        echo "cluster: no kind cluster $CLUSTER"
    fi
}

case "${1:-}" in
up) up ;;
down) down ;;
*) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
