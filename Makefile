# Leadflow — `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_WORKERS ?= 2

.DEFAULT_GOAL := help

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# The dependencies come from the hashed lock (pip refuses a file whose hash is not in it); the
# project itself is installed editable on top, without dependencies, as it cannot be hashed.
# The lock pins pip too, and pip is upgraded to that pin (by hash) on its own first: the pip a
# new venv brings (23.x with Python 3.11) refuses a hashed file whose packages ask for extras
# (pip-audit's CacheControl[filecache]) once a newer release of that package is published.
# CONTRIBUTING.md says how to change the locks.
$(STAMP): pyproject.toml requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	sed -n '/^pip==/,/# via/p' requirements-dev.lock > $(VENV)/pip.lock
	$(BIN)/pip install --quiet --require-hashes -r $(VENV)/pip.lock
	$(BIN)/pip install --quiet --require-hashes -r requirements-dev.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install Leadflow with its test tools

dev: $(STAMP) ## Run everything in one process (embedded broker + SQLite) on port 8000
	$(BIN)/leadflow dev

test: $(STAMP) ## Run the whole test suite (PostgreSQL, SQLite, embedded broker, Redis, Chromium, promtool)
	@# The browser tests drive Debian's chromium (Playwright cannot download its own browsers here).
	command -v chromium >/dev/null || [ "$$(id -u)" != 0 ] || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)
	@# The shared rate-limit tests start redis-server themselves, on a port of their own.
	command -v redis-server >/dev/null || [ "$$(id -u)" != 0 ] || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server)
	@# The alert rules' tests run promtool (Debian's prometheus package, where it comes from).
	command -v promtool >/dev/null || [ "$$(id -u)" != 0 ] || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus)
	@# Two workers (pytest-xdist), each with its own databases, broker and servers (the fixtures'
	@# session scope is per worker): the suite takes about half the time on two cores.
	$(BIN)/python -m pytest -n $(TEST_WORKERS)

lint: $(STAMP) ## ruff lint and format check, mypy type check, the import contract, pip-audit
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy services shared
	$(BIN)/lint-imports --no-cache
	@$(MAKE) --no-print-directory audit

# Both locks are resolved for CPython 3.11 on Linux; the dev lock takes the runtime lock's pins
# as constraints, so the tests run the versions the image ships. LOCK_FLAGS=--upgrade moves
# everything to the newest versions, LOCK_FLAGS='--upgrade-package NAME' one package.
LOCK := $(BIN)/uv pip compile pyproject.toml --quiet --generate-hashes --python-version 3.11 \
	--python-platform linux --custom-compile-command 'make lock' $(LOCK_FLAGS)

lock: $(STAMP) ## Regenerate requirements.lock and requirements-dev.lock from pyproject.toml
	$(LOCK) --output-file requirements.lock
	$(LOCK) --extra dev --constraints requirements.lock --output-file requirements-dev.lock

# pip-audit looks every locked release up in PyPI's JSON API (pypi.org/pypi/NAME/VERSION/json)
# and checks its hashes there; --strict fails on any release it could not look up. Where that
# API is out of reach (some sandboxes), the audit cannot run: it says so loudly and lint goes
# on, unless AUDIT_REQUIRED=1.
AUDIT_PROBE := https://pypi.org/pypi/pip/24.0/json

audit: $(STAMP) ## Known vulnerabilities in the locked dependencies (pip-audit, PyPI's advisories)
	@if $(BIN)/python -c 'import sys, urllib.request as u; u.urlopen(sys.argv[1], timeout=15)' \
		'$(AUDIT_PROBE)' 2>/dev/null; then \
		echo "$(BIN)/pip-audit --strict --disable-pip --require-hashes -r requirements-dev.lock"; \
		$(BIN)/pip-audit --strict --disable-pip --require-hashes --progress-spinner off \
			-r requirements-dev.lock; \
	else \
		echo "pip-audit NOT RUN: PyPI's JSON API ($(AUDIT_PROBE)) is out of reach" >&2; \
		test -z "$(AUDIT_REQUIRED)"; \
	fi

schemas: $(STAMP) ## Regenerate the event JSON Schemas in docs/schemas
	$(BIN)/leadflow events schemas --out docs/schemas

bench: $(STAMP) ## Run the benchmarks and print their tables (not part of the tests)
	$(BIN)/python -m bench

bench-sla: $(STAMP) ## SLA sweep cost at 10k/100k/1M open clocks, catch-up, tier latency at 500 leads/s
	$(BIN)/python -m bench.sla

bench-sla-planning: $(STAMP) ## CPU of planning a routed lead's SLA clocks (pure code, no database)
	$(BIN)/python -m bench.sla_planning

bench-webhooks: $(STAMP) ## Webhook latency at 500 leads/s end to end, and the embedded broker's CPU
	$(BIN)/python -m bench.webhooks
	$(BIN)/python -m bench.broker

bench-funnel: $(STAMP) ## Funnel (issue 19): the report over 1M leads on PostgreSQL, the analytics handler's events/s
	$(BIN)/python -m bench.funnel

bench-crm: $(STAMP) ## CRM handoff (issue 18): lead.qualified latency at 500 leads/s, HubSpot batch upserts per second
	-$(BIN)/python -m bench.webhooks --event lead.qualified --burst 2000
	$(BIN)/python -m bench.crm

bench-capacity: $(STAMP) ## The figures of docs/capacity.md: CPU per lead of each of the five processes, rows and bytes per lead, the plan
	$(BIN)/python -m bench.capacity

fuzz: $(STAMP) ## Schemathesis against the whole API of a running `leadflow dev`: 300 examples, a new seed
	$(BIN)/python -m tests.support.fuzz --examples 300

chaos: $(STAMP) ## Chaos in the production topology: five processes killed, broker and PostgreSQL restarted, the CRM flapping; the invariant report
	$(BIN)/python -m bench.chaos

.PHONY: help install dev test lint lock audit schemas bench bench-sla bench-sla-planning bench-webhooks bench-crm bench-funnel bench-capacity chaos fuzz

docs: $(STAMP) ## Regenerate the settings table in docs/configuration.md and the event schemas
	$(BIN)/python -c "import pathlib; from services.settings import settings_reference as r; p = pathlib.Path('docs/configuration.md'); t = p.read_text(); i = t.index('| variable |'); p.write_text(t[:i] + r())"
	$(BIN)/leadflow events schemas --out docs/schemas

.PHONY: docs
