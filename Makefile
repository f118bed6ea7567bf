# fraudops — the verbs a newcomer needs. Everything installs itself on first use and is cached
# under .cache/ (virtual environment, Kafka jars, Go-built Kubernetes binaries); run state
# (databases, logs, pids) lives under .run/.
SHELL := /bin/bash
.DEFAULT_GOAL := help

CACHE      := .cache
VENV       := $(CACHE)/venv
PY         := $(VENV)/bin/python
FRAUDOPS   := $(VENV)/bin/fraudops
UV_VERSION := 0.13.9
INSTALLED  := $(VENV)/.installed

.PHONY: help demo test test-unit test-integration test-k8s crds bench lint fmt install lock infra-up infra-down infra-status k8s-bin prometheus cluster clean

help: ## list the verbs
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(INSTALLED): requirements.lock pyproject.toml
	@command -v python3 >/dev/null || { echo "error: python3 (3.11+) is required"; exit 1; }
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(VENV)/bin/pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	@$(VENV)/bin/uv pip sync -q --python $(PY) requirements.lock
	@$(VENV)/bin/uv pip install -q --python $(PY) --no-deps -e .
	@touch $@
	@echo "✓ python environment ready in $(VENV)"

install: $(INSTALLED) ## create the virtual environment from the lock file

lock: ## re-resolve requirements.lock from pyproject.toml (needs PyPI)
	$(VENV)/bin/uv pip compile pyproject.toml --all-extras --python-version 3.11 -o requirements.lock

demo: $(INSTALLED) ## the main job, end to end, on local defaults
	$(FRAUDOPS) demo

test: $(INSTALLED) k8s-bin prometheus ## every test (starts and stops the real PostgreSQL, Kafka, kube-apiserver and Prometheus it needs)
	$(VENV)/bin/pytest

test-unit: $(INSTALLED) ## the fast tests only
	$(VENV)/bin/pytest tests/unit

test-integration: $(INSTALLED) ## tests against real PostgreSQL and Kafka
	$(VENV)/bin/pytest tests/integration

test-k8s: $(INSTALLED) k8s-bin prometheus ## the operator against a real kube-apiserver and Prometheus
	$(VENV)/bin/pytest -m k8s tests/k8s

crds: $(INSTALLED) ## regenerate manifests/crds from operator/fraudops_operator/crd.py
	$(PY) -m fraudops_operator.crd

bench: $(INSTALLED) ## benchmarks: writes loadtest/results/*.json and BENCH.md
	$(FRAUDOPS) bench all

lint: $(INSTALLED) ## ruff, mypy and the import-layer contracts
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

fmt: $(INSTALLED) ## format the code
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

infra-up: $(INSTALLED) ## start local PostgreSQL and Kafka
	$(FRAUDOPS) infra up

infra-down: $(INSTALLED) ## stop them
	$(FRAUDOPS) infra down

infra-status: $(INSTALLED)
	$(FRAUDOPS) infra status

k8s-bin: ## build kube-apiserver, etcd, kubectl, kube-controller-manager from Go modules (cached)
	bash hack/k8s/build.sh

prometheus: ## Debian's prometheus package, for the operator's metric-analysis tests
	bash hack/prometheus.sh

cluster: ## create a kind cluster and deploy with skaffold (needs kind, docker, skaffold)
	@echo "see README: kind create cluster --config manifests/kind/cluster.yaml && skaffold dev"

clean: ## stop local processes and delete run state and data (keeps the caches)
	-@test -x $(FRAUDOPS) && $(FRAUDOPS) infra down --delete-data
	rm -rf .run
