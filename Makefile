# Two commands matter: `make up` (start all six services) and `make test` (the whole suite).
SHELL := /bin/bash
.DEFAULT_GOAL := help

# uv comes from PATH, or is bootstrapped from PyPI into .tools/ on first use.
UV := $(or $(shell command -v uv 2>/dev/null),$(CURDIR)/.tools/bin/uv)
PYTHON ?= python3
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON ?= $(shell command -v $(PYTHON))
VENV_BIN := $(CURDIR)/.venv/bin

.PHONY: help up sync system-deps lint typecheck unit integration test clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(CURDIR)/.tools/bin/uv:
	$(PYTHON) -m venv $(CURDIR)/.tools
	$(CURDIR)/.tools/bin/pip install --quiet uv

sync: | $(UV) ## Create .venv and install the workspace (locked versions)
	$(UV) sync --frozen --all-packages

up: sync ## Start all six services on 8000-8005 (Ctrl-C stops them)
	@mkdir -p .run data
	PATH="$(VENV_BIN):$$PATH" DEV_MODE="$${DEV_MODE:-true}" \
		$(VENV_BIN)/supervisord -n -c scripts/supervisord.conf

system-deps: ## Install the Debian packages the tests drive (chromium, wrk, ...) when missing
	@scripts/system_deps.sh

lint: sync ## ruff lint and format check
	$(VENV_BIN)/ruff check .
	$(VENV_BIN)/ruff format --check .

typecheck: sync ## mypy --strict over every package
	$(VENV_BIN)/mypy

unit: sync ## Unit tests of each service (no processes, no network)
	$(VENV_BIN)/pytest -q -m "not integration"

integration: sync system-deps ## Real processes on free ports, on PostgreSQL+Redis and on the embedded defaults
	$(VENV_BIN)/pytest -q -m integration

test: lint typecheck system-deps ## Everything: lint, types, unit and integration tests
	$(VENV_BIN)/pytest -q

clean: ## Remove the environment, local data and caches
	rm -rf .venv .tools .run data .pytest_cache .mypy_cache .ruff_cache test-output
