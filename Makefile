# Every set-up step lives here, so a fresh clone needs only `make run` or `make test`.
# CI runs `make test` verbatim (.ci/run).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STORE  ?= model_store
DOCKER  ?= docker
IMAGE   ?= prediction-service
VERSION ?= $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' service/__init__.py)
PIP    := $(BIN)/python -m pip --disable-pip-version-check --quiet

.DEFAULT_GOAL := help
.PHONY: help install install-test install-bench demo run check fmt tools test bench docker-build docker-run clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] <= (3, 13) else "Python 3.11-3.13 is required; set PYTHON=python3.X")'
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

# The C walk is built by pip into service/engines/, so a change to its source reinstalls.
EXTENSIONS := service/engines/_forest.c

$(VENV)/.installed: pyproject.toml $(EXTENSIONS) | $(BIN)/python
	$(PIP) install -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml $(EXTENSIONS) | $(BIN)/python
	$(PIP) install -e '.[test]'
	@touch $(VENV)/.installed $@

$(VENV)/.installed-bench: pyproject.toml bench/requirements.txt $(EXTENSIONS) | $(BIN)/python
	$(PIP) install -e . -r bench/requirements.txt
	@touch $(VENV)/.installed $@

install: $(VENV)/.installed  ## create .venv and install the service

install-test: $(VENV)/.installed-test  ## create .venv and install the service with its test tools

demo: install  ## train the demo models (iris, diabetes, loans) into the store if absent
	$(BIN)/python -m service demo --model-store $(STORE)

run: demo  ## serve the store on 127.0.0.1:5000 with iris as the default model
	PREDICTION_DEFAULT_MODEL=$${PREDICTION_DEFAULT_MODEL:-iris} \
		$(BIN)/python -m service serve --model-store $(STORE)

fmt: install-test  ## format and autofix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

check: install-test  ## ruff format --check, ruff check, mypy --strict
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

tools:  ## install the system tools the tests need (prometheus, promtool, wrk, gcc; as root)
	bash scripts/install-tools

test: tools check  ## lint, type check and run the whole test suite
	$(BIN)/python -m pytest

install-bench: $(VENV)/.installed-bench  ## create .venv and install the service with the bench's servers

bench: install-bench tools  ## side-by-side load benchmark (~14 min): table, bench-results/ report and plot
	$(BIN)/python -m bench $(BENCH_ARGS)

docker-build:  ## build the image $(IMAGE):$(VERSION) (DOCKER=podman works too)
	$(DOCKER) build --build-arg VERSION=$(VERSION) \
		--build-arg SOURCE_URL="$$(git remote get-url origin 2>/dev/null)" \
		-t $(IMAGE):$(VERSION) -t $(IMAGE):latest .

docker-run: demo  ## run the image on :5000 with ./model_store mounted read-only at /models
	$(DOCKER) run --rm -p 5000:5000 -v "$(CURDIR)/$(STORE):/models:ro" $(IMAGE):$(VERSION)

clean:  ## remove the virtualenv, built extensions and caches (the model store stays)
	rm -rf $(VENV) .bench-venv-3.13 build *.egg-info service/engines/*.so .pytest_cache .mypy_cache .ruff_cache .hypothesis
