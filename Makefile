# One way to run things. The local stack (RabbitMQ + FerretDB) and services run in the
# background under var/; `make down` stops them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
.PHONY: help venv web stack up down run test fuzz chaos drill-cluster chart-tools lint bench docs clean

VENV := .venv
BIN := $(VENV)/bin
# The local stack's secrets (made by deploy/local/stack.sh), for commands that run services.
LOCAL_ENV := set -a && . var/local.env && set +a &&
PYTEST_ARGS ?=

help:
	@echo "make run    start everything, seed demo data, walk one opinion through"
	@echo "make test   run the tests against the local RabbitMQ + FerretDB"
	@echo "make fuzz   fuzz every HTTP API from its OpenAPI document (longer run)"
	@echo "make chaos  chaos drill: kill processes under load, check nothing lost or doubled"
	@echo "make drill-cluster  3-node RabbitMQ cluster drill: stop the queues' leader under load"
	@echo "make lint   ruff + mypy"
	@echo "make bench  start everything and run minyi bench"
	@echo "make docs   write docs/asyncapi.json"
	@echo "make up | down | stack | venv | clean"

venv:
	@test -x $(BIN)/python || python3 -m venv $(VENV)
	@if [ ! -f $(VENV)/.installed ] || [ pyproject.toml -nt $(VENV)/.installed ]; then \
		echo "==> installing minyi and dev tools into $(VENV)"; \
		$(BIN)/pip install -q -e '.[dev]' && touch $(VENV)/.installed; \
	fi

stack: venv
	@deploy/local/stack.sh up

# The console's browser app: npm packages from the lockfile, then a Vite build into dist/
# (served by the console; nothing is loaded from outside at run time).
WEB := services/console/web
WEB_SOURCES := $(shell find $(WEB)/src -type f 2>/dev/null) $(WEB)/index.html $(WEB)/vite.config.js
web: $(WEB)/dist/index.html

$(WEB)/node_modules/.package-lock.json: $(WEB)/package-lock.json
	@echo "==> installing the console's npm packages (npm ci)"
	@cd $(WEB) && npm ci --no-audit --no-fund --loglevel=error

$(WEB)/dist/index.html: $(WEB)/node_modules/.package-lock.json $(WEB_SOURCES)
	@echo "==> building the console (vite build)"
	@cd $(WEB) && npx vite build --logLevel warn

up: stack web
	@deploy/local/services.sh up

down:
	@deploy/local/services.sh down; deploy/local/stack.sh down

run: up
	@$(LOCAL_ENV) $(BIN)/minyi seed
	@$(LOCAL_ENV) $(BIN)/minyi demo
	@echo
	@echo "The system keeps running in the background; 'make down' stops it."
	@echo "Logs: var/log/ (console, intake, routing, followup, notification, ferretdb)."

# Tests start their own service processes; they only need the broker and the store.
# First the tests most exposed to the calendar again, as of instants that have broken such
# code: a month's last minute in Beijing (still that day in UTC), a year's first minute, and a
# year the holiday library does not know. Then the whole suite on today's clock.
# Nothing follows a passing run, so the output ends with pytest's summary line.
# Exit code 5 (no tests collected) fails like any other failure, with a message.
TEST_DATES := 2026-12-31T23:59:00+08:00 2027-01-01T00:00:00+08:00 2027-06-14T16:30:00+08:00
DATE_TESTS := tests/e2e/test_followup_lifecycle.py tests/e2e/test_lifecycle.py

test: stack web chart-tools
	@for at in $(TEST_DATES); do echo "==> as of $$at: $(DATE_TESTS)"; \
		MINYI_TEST_NOW=$$at $(BIN)/pytest -q $(DATE_TESTS) || exit $$?; done
	@$(BIN)/pytest $(PYTEST_ARGS) || { rc=$$?; \
		[ $$rc -ne 5 ] || echo "error: no tests ran (pytest exit code 5)" >&2; exit $$rc; }

# The API fuzz tests with many more examples per operation than `make test` runs.
fuzz: stack
	@MINYI_FUZZ_EXAMPLES=$${MINYI_FUZZ_EXAMPLES:-300} $(BIN)/pytest tests/e2e/test_fuzz.py $(PYTEST_ARGS)

# Kill services, the broker and the store while opinions flow; check nothing is lost or doubled.
# The drill's load generator sends far more than one office's 600 requests a minute: the rate
# limit (not what the drill is about) is lifted for the services it starts and restarts.
chaos: export MINYI_RATE_LIMIT_PER_MINUTE = 1000000
chaos: up
	@$(LOCAL_ENV) $(BIN)/minyi chaos

# helm (go install), the CRD validators (npm) and the CRDs (Go modules), pinned, in var/tools.
chart-tools:
	@deploy/helm/tools.sh

# Three RabbitMQ nodes of its own (ports 25xxx, data in var/drill), the services on all three;
# stops the node leading the work queues under load and starts it again (tools/cluster_drill.py).
drill-cluster: stack
	@$(BIN)/minyi drill-cluster

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: up
	@$(LOCAL_ENV) $(BIN)/minyi bench

docs: venv
	$(BIN)/minyi docs asyncapi --output docs/asyncapi.json

clean: down
	rm -rf var
