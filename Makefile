# consodam — two commands do everything: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo "$(PYTHON) -m uv")
export UV_PYTHON_DOWNLOADS := never
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export CONSODAM_HOME ?= $(CURDIR)/.consodam

.PHONY: setup test lint typecheck pytest demo dev sandbox bench clean

setup: .venv/.synced

.venv/.synced: pyproject.toml uv.lock
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet 'uv>=0.9,<1'
	$(UV) sync --frozen --compile-bytecode --python $(PYTHON)
	@# Bytecode up front: the commands start fast even where PYTHONDONTWRITEBYTECODE is set.
	@$(UV) run --frozen python -m compileall -q consodam_pipeline consodam_tests >/dev/null
	@mkdir -p $(DAGSTER_HOME) && touch $@

lint: setup
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .

typecheck: setup
	$(UV) run --frozen mypy

# The suite also runs `bench peers`, which needs the `peers` extra (dlt); `make demo` leaves it out.
pytest: setup
	$(UV) run --frozen --extra peers pytest -q -n 2 $(PYTEST_ARGS)

test: lint typecheck pytest

demo: setup
	@cp -n deploy/dagster.yaml $(DAGSTER_HOME)/dagster.yaml 2>/dev/null || true
	$(UV) run --frozen consodam demo

dev: setup
	@cp -n deploy/dagster.yaml $(DAGSTER_HOME)/dagster.yaml 2>/dev/null || true
	$(UV) run --frozen consodam dev

sandbox: setup
	$(UV) run --frozen consodam sandbox

bench: setup
	$(UV) run --frozen consodam bench ingest --works 2000

clean:
	rm -rf .dagster_home .consodam .pytest_cache .mypy_cache .ruff_cache
