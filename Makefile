# CloudDTH: the commands a developer needs. On a fresh clone, `make demo` and `make test` are
# enough: each first makes the virtualenv (.venv) and installs the project into it.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# Touched after a successful install: the install runs again only when pyproject.toml is newer.
STAMP := $(VENV)/.installed

.PHONY: help venv demo serve test lint bench clean

help:
	@echo "make demo    local demo on SQLite: demo data, a clinician login and token, the production server on 127.0.0.1:\$${PORT:-8000}"
	@echo "make test    the test suite (PYTEST_ARGS=... passes options to pytest; REQUIRE_POSTGRES=1 for PostgreSQL)"
	@echo "make serve   migrate, then the production server (granian) on 127.0.0.1:\$${PORT:-8000} with the environment's settings"
	@echo "make lint    ruff check and ruff format --check"
	@echo "make bench   bench/crud.py (BENCH_ARGS=... passes options)"
	@echo "make venv    create .venv and install the project with its test extras"
	@echo "make clean   remove .venv, caches and build output (var/ with the SQLite data is kept)"

venv: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e '.[test]'
	touch $@

demo: venv
	bin/demo

serve: venv
	$(BIN)/python manage.py migrate --noinput
	exec $(BIN)/python -m dth_project.serve

# var/ holds the SQLite databases and the live test server's log (tests/conftest.py writes
# var/live-server.log even when the database is PostgreSQL and settings create no var/).
test: venv
	mkdir -p var
	$(BIN)/pytest $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: venv
	$(BIN)/python bench/crud.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build .pytest_cache .ruff_cache *.egg-info
	find . -path ./var -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
