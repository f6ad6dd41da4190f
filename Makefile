# Two commands for a newcomer: `make run` and `make test`. Everything they need is installed from here.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
CONSTRAINTS := constraints.txt

.PHONY: run test lint typecheck browser bench openapi clean help

help:
	@echo "make run      create .venv, install, start the embedded store and the hub on 127.0.0.1:8080 with demo data"
	@echo "make test     install test dependencies, lint, type-check, run the whole test suite"
	@echo "make typecheck  mypy over fhir_hub, adapters, consent, profiles and bench (settings: [tool.mypy] in pyproject.toml)"
	@echo "make bench    REST, search at 100,000 resources, Bundles, ingest, patient matching, Patient/$$match, consent, backfill, validation and Patient/$$summary benchmarks (bench/results/)"
	@echo "make openapi  regenerate openapi/openapi.json from the app"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(PIP) install --quiet -c $(CONSTRAINTS) -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install --quiet -c $(CONSTRAINTS) -e '.[test]'
	touch $@

run: $(VENV)/.installed
	$(BIN)/fhir-hub serve

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .

# What to check and how strictly is [tool.mypy] in pyproject.toml.
typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

# The resident page is tested in headless Chromium (tests/portal/): Debian's browser and driver, installed
# when missing on a machine with apt-get (CI runs as root on a fresh Debian machine).
browser:
	@if { [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; } && command -v apt-get >/dev/null; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; fi

test: lint typecheck browser
	$(BIN)/python -m pytest

bench: $(VENV)/.installed-test
	$(BIN)/python -m bench

openapi: $(VENV)/.installed
	$(BIN)/fhir-hub openapi --output openapi/openapi.json

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis .ruff_cache .mypy_cache test-artifacts
