# Every target sets itself up on a fresh machine (idempotently): a .venv with the project, and
# configurable-http-proxy from npm inside the project. Prerequisites: Python >= 3.10, git, Node.js + npm,
# and Debian's docker-registry for the registry tests (.ci/run installs the system packages on CI).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: setup serve test unit bench lint clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "binder-actors needs Python >= 3.10")'
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e '.[test]'
	touch $@

node_modules/.installed: package.json
	npm install --no-audit --no-fund --no-package-lock --loglevel=error
	touch $@

setup: $(VENV)/.installed node_modules/.installed

serve: setup
	$(BIN)/binder-actors serve

test: setup
	$(BIN)/python -m pytest --durations=15 $(PYTEST_ARGS)

# The pure tests only (no Ray, hub or browser): under a minute.
unit: setup
	$(BIN)/python -m pytest -m 'not integration' $(PYTEST_ARGS)

$(VENV)/.bench-installed: pyproject.toml | $(VENV)/.installed
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e '.[test,bench]'
	touch $@

bench: setup $(VENV)/.bench-installed
	$(BIN)/python -m bench
	$(BIN)/python -m bench.plots

lint: setup
	$(BIN)/ruff check binder_actors serve_app cluster tests bench

clean:
	rm -rf $(VENV) node_modules
