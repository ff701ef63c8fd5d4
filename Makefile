# Leadflow — `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install Leadflow with its test tools

dev: $(STAMP) ## Run everything in one process (embedded broker + SQLite) on port 8000
	$(BIN)/leadflow dev

test: $(STAMP) ## Run the whole test suite (PostgreSQL, SQLite, embedded broker, Chromium)
	@# The browser tests drive Debian's chromium (Playwright cannot download its own browsers here).
	command -v chromium >/dev/null || [ "$$(id -u)" != 0 ] || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)
	$(BIN)/python -m pytest

lint: $(STAMP) ## ruff lint and format check, mypy type check, the import contract
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy services shared
	$(BIN)/lint-imports --no-cache

schemas: $(STAMP) ## Regenerate the event JSON Schemas in docs/schemas
	$(BIN)/leadflow events schemas --out docs/schemas

bench: $(STAMP) ## Run the benchmarks and print their tables (not part of the tests)
	$(BIN)/python -m bench

bench-sla: $(STAMP) ## SLA sweep cost at 10k/100k/1M open clocks, catch-up, tier latency at 500 leads/s
	$(BIN)/python -m bench.sla

bench-webhooks: $(STAMP) ## Webhook latency at 500 leads/s end to end, and the embedded broker's CPU
	$(BIN)/python -m bench.webhooks
	$(BIN)/python -m bench.broker

bench-funnel: $(STAMP) ## Funnel (issue 19): the report over 1M leads on PostgreSQL, the analytics handler's events/s
	$(BIN)/python -m bench.funnel

bench-crm: $(STAMP) ## CRM handoff (issue 18): lead.qualified latency at 500 leads/s, HubSpot batch upserts per second
	-$(BIN)/python -m bench.webhooks --event lead.qualified --burst 2000
	$(BIN)/python -m bench.crm

chaos: $(STAMP) ## Fault run of the production processes: PostgreSQL and broker restarts, services killed
	$(BIN)/python -m bench.chaos

.PHONY: help install dev test lint schemas bench bench-sla bench-webhooks bench-crm bench-funnel chaos

docs: $(STAMP) ## Regenerate the settings table in docs/configuration.md and the event schemas
	$(BIN)/python -c "import pathlib; from services.settings import settings_reference as r; p = pathlib.Path('docs/configuration.md'); t = p.read_text(); i = t.index('| variable |'); p.write_text(t[:i] + r())"
	$(BIN)/leadflow events schemas --out docs/schemas

.PHONY: docs
