# Two commands on a fresh machine: `make demo` and `make test`. Everything else is set up by them.
VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= python3

.PHONY: setup controlplane tools demo test unit lint crds clean

setup: $(VENV)/.installed controlplane

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

test: setup tools
	$(BIN)/pytest $(PYTEST_ARGS)

unit: $(VENV)/.installed
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(BIN)/ruff check operator tests bench
	$(BIN)/mypy

# The CRDs from the pydantic models and the admission policies (oxygen/api/admission.py), the chart's
# copies of them and of the observability files.
crds: $(VENV)/.installed
	$(BIN)/python -m oxygen.api.crdgen crds
	cp crds/oxygen.dev_*.yaml charts/oxygen-operator/crds/
	$(BIN)/python -m oxygen.api.admission charts/oxygen-operator/templates
	cp observability/prometheus/oxygen-rules.yaml observability/grafana/oxygen-dashboard.json \
		charts/oxygen-operator/files/

clean:
	rm -rf $(VENV) .oxygen
