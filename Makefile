# Two commands set up a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: run test lint browser bench bench-submit clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# `make run` installs only what the service needs; `make test` adds the test tools.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(TEST_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

# Development, said out loud: a generated secret key (data/.peil-secret) and the API docs open at /docs.
run: export PEIL_ENV = development
run: $(STAMP)
	$(BIN)/peil db upgrade
	$(BIN)/peil demo --once
	$(BIN)/peil serve --host 127.0.0.1 --port 8000

# Debian's Chromium for the browser tests (Playwright's own browser download does not work here).
browser:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium)

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy scoring service

test: $(TEST_STAMP) browser lint
	$(BIN)/pytest

bench: $(TEST_STAMP)
	$(BIN)/python benchmarks/scoring.py

# Form submissions on SQLite and PostgreSQL against a minimal insert-only app (see README).
bench-submit: $(TEST_STAMP)
	$(BIN)/python benchmarks/submit.py

clean:
	rm -rf $(VENV) peil.db peil.db-wal peil.db-shm .pytest_cache .mypy_cache .ruff_cache
