# The two commands of the README: `make run` starts the workbench, `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test install lint demo screenshots

$(BIN)/workbench: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(BIN)/workbench

install: $(BIN)/workbench

run: install
	$(BIN)/workbench up

demo: install
	$(BIN)/workbench demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: install lint
	$(BIN)/pytest $(PYTEST_ARGS)

# The README's UI screenshots (docs/ui/), taken by the browser tests (needs Chromium and PostgreSQL).
screenshots: install
	$(BIN)/python -m tests.workbench.ui.screenshots
