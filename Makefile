# The two commands: `make demo` and `make test`. Each sets everything up first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXTRAS := orchestrator,train,dev

export PYTHONDONTWRITEBYTECODE :=
export MLFLOW_DISABLE_TELEMETRY := true
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export RAY_AUTH_MODE := disabled
# DeepSpeed probes for an accelerator at import and prints to stdout without this on CPU machines.
export DS_ACCELERATOR ?= cpu

.PHONY: setup system-packages demo test test-all lint bench clean

setup: system-packages $(STAMP)

# Debian packages the project needs: bubblewrap isolates the sandbox.
# Installed when we are root with apt; otherwise named, and CI fails loudly later.
system-packages:
	@bash scripts/system_packages.sh

# One resolver call for everything, so pins hold together (see constraints.txt).
# The stamp depends on the files that define the install: a second run with nothing changed takes seconds.
$(STAMP): pyproject.toml constraints.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	DS_BUILD_OPS=0 $(BIN)/pip install --quiet -c constraints.txt -e ".[$(EXTRAS)]"
	$(BIN)/python -m compileall -q $(VENV)/lib > /dev/null || true
	touch $(STAMP)

demo: setup
	$(BIN)/python -m codedance_core.cli.main demo

test: setup
	$(BIN)/python -m pytest -m "not slow" tests

test-all: setup
	$(BIN)/python -m pytest tests

lint: setup
	$(BIN)/ruff check codedance_core flows tasks tests benchmarks

bench: setup
	$(BIN)/python benchmarks/data.py

clean:
	rm -rf .codedance .pytest_cache
