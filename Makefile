# Two commands on a fresh machine: `make demo` and `make test`. Everything else is set up by them.
VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= python3

.PHONY: setup controlplane demo test unit lint crds clean

setup: $(VENV)/.installed controlplane

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

# Builds kube-apiserver, kube-controller-manager and etcd from pinned Go modules (cached).
controlplane:
	bash hack/controlplane/build.sh >/dev/null

demo: setup
	$(BIN)/oxygen demo

test: setup
	$(BIN)/pytest $(PYTEST_ARGS)

unit: $(VENV)/.installed
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(BIN)/ruff check operator tests bench
	$(BIN)/mypy

crds: $(VENV)/.installed
	$(BIN)/python -m oxygen.api.crdgen crds

clean:
	rm -rf $(VENV) .oxygen
