# Port's two commands for a newcomer: `make run` and `make test`. `make help` lists all.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The embedded default for `make run`: SQLite and mirrors in ./.data, local repos and
# the examples' registry (localhost:5000) allowed.
DATA ?= $(CURDIR)/.data
PORT ?= 8080
RUN_SETTINGS = PORT_DATA_DIR=$(DATA) PORT_PORT=$(PORT) PORT_ALLOW_LOCAL_REPOS=true PORT_ALLOWED_REGISTRIES=["localhost:5000"]
RUN_ENV = env $(foreach setting,$(RUN_SETTINGS),'$(setting)')

.DEFAULT_GOAL := help
.PHONY: help install constraints vendor run env demo example-release test lint format typecheck unit services bench clean

help: ## Show this help
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

install: $(STAMP) ## Create .venv and install Port with its development tools (pinned)

constraints: ## Re-pin constraints.txt: the newest releases pyproject.toml admits
	rm -rf $(VENV)-pin
	$(PYTHON) -m venv $(VENV)-pin
	$(VENV)-pin/bin/pip install --quiet --upgrade pip
	$(VENV)-pin/bin/pip install --quiet -e '.[dev]'
	{ echo "# Versions make install and CI use; regenerate with make constraints."; \
	  $(VENV)-pin/bin/pip freeze --exclude-editable; } > constraints.txt
	rm -rf $(VENV)-pin

vendor: ## Fetch the vendored browser files (GraphiQL, htmx) from npm again
	scripts/vendor.sh

run: $(STAMP) ## Serve Port on the embedded default, with the example apps (DATA=dir PORT=8080)
	$(RUN_ENV) $(BIN)/port serve --with-examples

env: ## Print the settings of `make run` as exports: eval "$$(make -s env)" then .venv/bin/port ...
	@printf "export '%s'\n" $(foreach setting,$(RUN_SETTINGS),'$(setting)')

example-release: $(STAMP) ## Cut a new release of an example app, e.g. APP=napari VERSION=0.5.1
	$(RUN_ENV) $(BIN)/port demo --release $(APP)=$(VERSION)

demo: $(STAMP) ## Index the example repositories and print the catalogue, no server (DATA=dir)
	$(RUN_ENV) $(BIN)/port db upgrade
	$(RUN_ENV) $(BIN)/port demo

format: $(STAMP) ## Format the code with ruff
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

lint: $(STAMP) ## Check formatting and lint with ruff
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck: $(STAMP) ## Type-check the code, its tests and benchmarks with mypy (strict)
	$(BIN)/mypy

services: ## Start what the suite needs (PostgreSQL, Docker engine, registry); prints exports
	@scripts/services.sh

test: $(STAMP) lint typecheck ## Install, lint, type-check and run the whole suite on SQLite and PostgreSQL
	@eval "$$(scripts/services.sh)" && $(BIN)/pytest

unit: $(STAMP) ## Run the unit tests only (no services)
	$(BIN)/pytest tests/unit

bench: $(STAMP) ## Run every benchmark; one table of targets, exit 1 on a miss
	$(BIN)/python benchmarks/run.py

clean: ## Remove the virtual environment, caches and the local data directory
	rm -rf $(VENV) .data .pytest_cache .mypy_cache .ruff_cache .hypothesis
