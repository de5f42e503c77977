# The two commands users need: `make demo` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: install lock lint format test test-fast bench demo down clean label-studio review

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Re-installs when pyproject.toml or constraints.txt changes. constraints.txt pins every
# package to the versions the suite last passed with: without it pip's resolver backtracks
# through s3fs/aiobotocore/botocore/boto3 releases for longer than CI allows
# (resolution-too-deep after 48 min). torch/torchvision pins come from local disk here.
$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/activate
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# The Label Studio server (the review loop): a venv of its own, since label-studio pins
# python-json-logger and redis below what Prefect needs. ~1.5-3.5 min and ~1 GB the first time.
# The project itself talks to it through label-studio-sdk only.
LS_VENV ?= .venv-ls
LABEL_STUDIO_VERSION = 1.23.2
$(LS_VENV)/.installed:
	$(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/pip install -q --upgrade pip
	$(LS_VENV)/bin/pip install -q label-studio==$(LABEL_STUDIO_VERSION)
	touch $@

label-studio: $(LS_VENV)/.installed

# After changing a dependency in pyproject.toml: install it, run the suite, then record the
# working set (review the diff; pip check must pass).
lock:
	$(BIN)/pip check
	$(BIN)/pip freeze --exclude-editable > constraints.txt

# ruff (settings in pyproject.toml): a lint or format problem fails `make test` in seconds.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Fix what ruff can fix by itself, then format.
format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Two pytest processes (pytest-xdist), a test file each at a time: most tests wait on Ray,
# servers and subprocesses, so two keep a 2-core machine busy. TEST_WORKERS=0 runs one process.
TEST_WORKERS ?= 2
PYTEST = $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

test: lint
	$(PYTEST) tests

test-fast: lint
	$(PYTEST) -m "not slow" tests

# Start the local stack (Prefect server, Ray + dashboard, served deployments; all on
# 127.0.0.1, state in .state/), run annotate-and-train/demo, wait, print where results are.
# Label Studio is not part of it (its install and first start would add 3-5 minutes): `make review`
# installs it and adds it to the running stack.
demo: install
	$(BIN)/python -m cli stack demo

# After `make demo`: the demo's 20 least certain photo targets into a Label Studio project
# (the stack's Label Studio: a stack started without it is restarted with it, results stay on
# disk; started if the stack is not running); prints where to review them.
review: install label-studio
	$(BIN)/python -m cli review demo

# Stop every process `make demo` started.
down:
	@if [ -x $(BIN)/python ]; then $(BIN)/python -m cli stack down; else echo "no .venv: nothing runs"; fi

clean:
	rm -rf $(VENV) $(LS_VENV) .pytest_cache build *.egg-info
