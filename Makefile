# The two commands users need: `make demo` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: install test test-fast bench demo down clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Re-installs when pyproject.toml changes. torch/torchvision pins come from local disk here.
$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

test: install
	$(BIN)/python -m pytest -q tests

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow" tests

# Start the local stack (Prefect server, Ray + dashboard, served deployments; all on
# 127.0.0.1, state in .state/), run annotate-and-train/demo, wait, print where results are.
demo: install
	$(BIN)/python -m cli.stack demo

# Stop every process `make demo` started.
down:
	@if [ -x $(BIN)/python ]; then $(BIN)/python -m cli.stack down; else echo "no .venv: nothing runs"; fi

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
