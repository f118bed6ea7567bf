"""The single-node Kubernetes cluster of `make e2e-cluster`, built on this machine (see README)."""
