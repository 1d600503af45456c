# Two commands on a fresh machine: `make demo` and `make test`. Everything else is set up by them.
VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= python3

.PHONY: setup controlplane postgres tools demo test unit integration coverage lint generate crds clean

setup: $(VENV)/.installed controlplane postgres

# The item store's tests and `oxygen dev up --postgres` run Debian's PostgreSQL (initdb, pg_ctl, postgres).
postgres:
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
		(apt-get update -qq && apt-get install -y -qq postgresql >/dev/null)

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

# Builds kube-apiserver, kube-controller-manager and etcd from pinned Go modules (cached).
controlplane:
	bash hack/controlplane/build.sh >/dev/null

# What the tests use beyond Python: helm (built from its Go module, cached), and from Debian: Lua for
# the Argo CD health check, Prometheus + promtool for the alert rules, Chromium for the run page.
tools:
	bash hack/tools/build.sh >/dev/null
	command -v lua5.4 >/dev/null || (apt-get update -qq && apt-get install -y -qq lua5.4 >/dev/null)
	command -v promtool >/dev/null && command -v prometheus >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq prometheus >/dev/null)
	test -x /usr/bin/chromium || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

demo: setup
	$(BIN)/oxygen demo

# Everything: unit, integration, and the slow chaos/HA/scale/packaging tests.
test: setup tools
	$(BIN)/pytest $(PYTEST_ARGS)

# No cluster, seconds.
unit: $(VENV)/.installed
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

# The cluster tier, narrowed while iterating: `make integration FILES=tests/integration/test_cli.py`,
# `make integration K=retry`, `make integration M="not slow"` (skips chaos/HA/scale). Each run starts a
# control plane unless OXYGEN_TEST_KUBECONFIG names a running `oxygen dev up` cluster's kubeconfig.
FILES ?= tests/integration
integration: setup
	$(BIN)/pytest $(FILES) $(if $(K),-k "$(K)") $(if $(M),-m "$(M)") $(PYTEST_ARGS)

# The unit tier's coverage of the controllers (their decisions are unit-tested; I/O is the cluster
# tier's). Another package: `make coverage COV=oxygen.planning`.
COV ?= oxygen.controllers
coverage: $(VENV)/.installed
	$(BIN)/pytest tests/unit --cov=$(COV) --cov-report=term-missing $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(BIN)/ruff check operator tests bench
	$(BIN)/ruff format --check operator tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

# The CRDs from the pydantic models and the admission policies (oxygen/api/admission.py), then the
# chart's copies of what Helm must find inside the chart: the CRDs, the policies and the observability
# files its templates read. Unit tests fail when a copy drifts.
generate: $(VENV)/.installed
	$(BIN)/python -m oxygen.api.crdgen crds
	cp crds/oxygen.dev_*.yaml charts/oxygen-operator/crds/
	$(BIN)/python -m oxygen.api.admission charts/oxygen-operator/templates
	cp observability/prometheus/oxygen-rules.yaml charts/oxygen-operator/files/prometheus-rules.yaml
	cp observability/grafana/oxygen-dashboard.json charts/oxygen-operator/files/grafana-dashboard.json

crds: generate

clean:
	rm -rf $(VENV) .oxygen
