# One set of entry points for people and CI: run, test, services, bench.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: run install test soak lint services services-down bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

EXAMPLES := examples/appliance-webhook-sink examples/appliance-weekday-panel

# Reinstall only when the package metadata changes. `run` needs the appliance alone; the
# suite also needs the test tools and the example plugins (it checks that third-party
# plugins are discovered and work).
$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(addsuffix /pyproject.toml,$(EXAMPLES)) | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]' $(addprefix -e ,$(EXAMPLES))
	touch $@

# terser, for the check that the committed tracker.js is the build of tracker/src (Node 20).
tracker/node_modules/.installed: tracker/package-lock.json
	npm ci --prefix tracker --no-audit --no-fund --loglevel=error
	touch $@

install: $(VENV)/.installed-test

## Serve the appliance on its embedded default (SQLite + in-process queue) at http://HOST:PORT
run: $(VENV)/.installed-run
	$(BIN)/appliance serve --host $(HOST) --port $(PORT)

## Install everything the suite needs, start its services, run the whole suite
test: $(VENV)/.installed-test tracker/node_modules/.installed services
	$(BIN)/ruff check appliance plugins tests bench examples
	$(BIN)/python -m pytest
	$(BIN)/python -m pytest -p no:cacheprovider $(EXAMPLES)

## Start PostgreSQL, Redis, Kafka (KRaft) on loopback; install Chromium, wrk, nginx (idempotent)
services:
	bash services/up.sh

services-down:
	bash services/down.sh

# Ten minutes of steady load on `serve` with RSS sampled (APPLIANCE_SOAK_S=120 for less).
soak: $(VENV)/.installed-test services
	$(BIN)/python -m pytest -m soak -s -p no:cacheprovider tests/test_soak.py

bench: install services
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
