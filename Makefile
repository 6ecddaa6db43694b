# Two commands matter: `make up` (start all six services) and `make test` (the whole suite).
SHELL := /bin/bash
.DEFAULT_GOAL := help

# uv comes from PATH, or is bootstrapped from PyPI into .tools/ on first use.
UV := $(or $(shell command -v uv 2>/dev/null),$(CURDIR)/.tools/bin/uv)
PYTHON ?= python3
export UV_PYTHON_DOWNLOADS := never
# The real interpreter, not a pyenv shim: uv would see a new Python and rebuild .venv each time.
export UV_PYTHON ?= $(shell $(PYTHON) -c 'import sys; print(sys.executable)')
VENV_BIN := $(CURDIR)/.venv/bin

.PHONY: help up sync sync-run system-deps lint typecheck unit integration deploy-check docs test compose-test swarm-test bench bench-cache clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

$(CURDIR)/.tools/bin/uv:
	$(PYTHON) -m venv $(CURDIR)/.tools
	$(CURDIR)/.tools/bin/pip install --quiet uv

sync: | $(UV) ## Create .venv and install the workspace and the dev tools (locked versions)
	$(UV) sync --frozen --all-packages

# What `make up` runs on: the six services and supervisord, none of the test or bench tools.
# --inexact keeps what `make sync` installed, so `make test` after it starts warm.
sync-run: | $(UV)
	$(UV) sync --frozen --all-packages --no-default-groups --group run --inexact

# Where `make up` listens. Override them to run a second copy beside the first
# (GATEWAY_PORT=9000 ... make up); the URLs the services use to find each other follow,
# unless you set those URLs yourself.
up: export GATEWAY_PORT ?= 8000
up: export BALANCER_PORT ?= 8001
up: export SERVER_PORT ?= 8002
up: export SERVER2_PORT ?= 8003
up: export CACHE_PORT ?= 8004
up: export MONITOR_PORT ?= 8005
up: export RUN_DIR ?= $(CURDIR)/.run
LOCAL := http://127.0.0.1
up: export SERVIDORES ?= $(LOCAL):$(SERVER_PORT),$(LOCAL):$(SERVER2_PORT)
up: export LOAD_BALANCER_URL ?= $(LOCAL):$(BALANCER_PORT)
up: export ITEMS_OPENAPI_URL ?= $(LOCAL):$(SERVER_PORT)/openapi.json
up: export MONITOR_TARGETS ?= api_gateway=$(LOCAL):$(GATEWAY_PORT),load_balancer=$(LOCAL):$(BALANCER_PORT),server=$(LOCAL):$(SERVER_PORT),server2=$(LOCAL):$(SERVER2_PORT),cache=$(LOCAL):$(CACHE_PORT),monitoring=$(LOCAL):$(MONITOR_PORT)
up: sync-run ## Start all six services on 8000-8005 (Ctrl-C stops them)
	@mkdir -p "$(RUN_DIR)" data
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

deploy-check: sync system-deps ## Dockerfiles (hadolint), compose file, Kubernetes overlays and CI workflow, offline
	$(VENV_BIN)/pytest -q tests/deploy

# Material for MkDocs prints a banner about MkDocs 2.0 on every build unless told not to.
docs: sync ## Build the documentation site into site/ (MkDocs, strict; open site/index.html)
	NO_MKDOCS_2_WARNING=1 $(VENV_BIN)/mkdocs build --strict --site-dir $(CURDIR)/site

test: lint typecheck system-deps ## Everything: lint, types, unit, deployment checks and integration tests
	$(VENV_BIN)/pytest -q

# The system in containers (Docker Compose): on first use it creates .env with fresh secrets
# and prints the admin password once; an existing .env only gets its blank secrets filled in.
# ENV_FILE=... uses another env file; compose reads COMPOSE_PROJECT_NAME and COMPOSE_FILE.
.PHONY: compose-up compose-down
compose-up: ## Build and start everything in containers, and wait until all are healthy
	@$(PYTHON) scripts/compose_up.py --env-file "$(or $(ENV_FILE),$(CURDIR)/.env)"

compose-down: ## Stop the containers of make compose-up (the database volume stays)
	@$(PYTHON) scripts/compose_up.py --down --env-file "$(or $(ENV_FILE),$(CURDIR)/.env)"

# Starts a dockerd of its own (root), with stand-ins for the base images; see tests/compose.
# COMPOSE_TEST_ENGINE=system uses the machine's engine and real base images instead.
compose-test: sync ## Build the images, run docker-compose.yml end to end in a real Docker engine
	@[ "$${COMPOSE_TEST_ENGINE:-}" = system ] || scripts/system_deps.sh scripts/compose-test-packages.txt
	$(VENV_BIN)/pytest -q -p no:cacheprovider --timeout=1800 tests/compose

# deploy/swarm/stack.yml on a one-node swarm of a dockerd of its own (root), on compose-test's
# stand-in base images; it scales and rolls the stack under load. See tests/swarm.
swarm-test: sync ## Deploy the swarm stack, scale and roll it under load: no request may fail
	@scripts/system_deps.sh scripts/compose-test-packages.txt
	$(VENV_BIN)/pytest -q -p no:cacheprovider --timeout=900 tests/swarm

# BENCH_DURATION, BENCH_CONNECTIONS, BENCH_RUNS (or ARGS="--duration 5 ...") shorten it.
bench: sync system-deps ## wrk: our path against nginx and a bare app, side by side (PostgreSQL+Redis); ~17 min
	PYTHONPATH=$(CURDIR) $(VENV_BIN)/python -m bench.run $(ARGS)

bench-cache: sync system-deps ## Item-cache hit ratio of a Zipf read load through the gateway (PostgreSQL+Redis)
	PYTHONPATH=$(CURDIR) $(VENV_BIN)/python bench/cache_hit_ratio.py $(ARGS)

clean: ## Remove the environment, local data and caches
	rm -rf .venv .tools .run data .pytest_cache .mypy_cache .ruff_cache test-output
