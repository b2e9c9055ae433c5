# The two commands: `make demo` and `make test`. Each sets everything up first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXTRAS := orchestrator,train,dev
# The whole resolved stack, pinned (`make lock` refreshes it); the GPU worker image has its own.
LOCK := locks/cpu.txt

export PYTHONDONTWRITEBYTECODE :=
export MLFLOW_DISABLE_TELEMETRY := true
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export RAY_AUTH_MODE := disabled
# DeepSpeed probes for an accelerator at import and prints to stdout without this on CPU machines.
export DS_ACCELERATOR ?= cpu
# Prefect's temporary server can take long to start on a loaded 2-core machine.
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 180

.PHONY: setup system-packages lock demo test test-all lint bench ui deploy worker mini clean

setup: system-packages $(STAMP)

# Debian packages the project needs: bubblewrap isolates the sandbox.
# Installed when we are root with apt; otherwise named, and CI fails loudly later.
system-packages:
	@bash scripts/system_packages.sh

# One resolver call for everything, every package at its locked version.
# The stamp depends on the files that define the install: a second run with nothing changed takes seconds.
$(STAMP): pyproject.toml $(LOCK)
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	DS_BUILD_OPS=0 $(BIN)/pip install --quiet -c $(LOCK) -e ".[$(EXTRAS)]"
	$(BIN)/python -m compileall -q $(VENV)/lib > /dev/null || true
	touch $(STAMP)

# Re-resolve the stack from pyproject.toml, constraints.txt and the worker image's Ray/vLLM versions
# into locks/ (package metadata only, about a minute), then reinstall from the new lock and run the tests.
lock:
	test -x $(BIN)/python || $(MAKE) setup
	$(BIN)/python scripts/lock.py
	$(MAKE) test

# The whole lifecycle on the tiny profile: Prefect's local mode, a local Ray, MLflow on SQLite
# under .codedance/, the local store. A second run with nothing changed is all cache hits.
demo: setup
	$(BIN)/python -m flows.lifecycle --profile tiny

test: setup
	$(BIN)/python -m pytest -m "not slow" tests

test-all: setup
	$(BIN)/python -m pytest tests

lint: setup
	$(BIN)/ruff check codedance_core flows tasks tests benchmarks scripts

# Performance figures (JSON); each script's docstring says what it measures and its targets.
bench: setup
	for b in sandbox rollout rollout_real rewards train data; do echo "== $$b"; $(BIN)/python benchmarks/$$b.py || exit 1; done

# Mini-CodeDance: the paper's claims in miniature (5 arms x 3 seeds; report in docs/mini-codedance).
mini: setup
	$(BIN)/codedance experiment mini --seeds 3 --tracking-uri sqlite:///.codedance/mlflow.db

PREFECT_PORT ?= 4200
MLFLOW_PORT ?= 5000
# The Prefect UI/API and the MLflow UI on loopback, in the background (logs in .codedance/).
ui: setup
	mkdir -p .codedance
	nohup $(BIN)/prefect server start --host 127.0.0.1 --port $(PREFECT_PORT) > .codedance/prefect-server.log 2>&1 &
	nohup $(BIN)/mlflow ui --backend-store-uri sqlite:///.codedance/mlflow.db --host 127.0.0.1 --port $(MLFLOW_PORT) > .codedance/mlflow-ui.log 2>&1 &
	@echo "Prefect UI:  http://127.0.0.1:$(PREFECT_PORT)   (export PREFECT_API_URL=http://127.0.0.1:$(PREFECT_PORT)/api)"
	@echo "MLflow UI:   http://127.0.0.1:$(MLFLOW_PORT)"

# Register prefect.yaml's deployments (needs PREFECT_API_URL), then serve them with a process worker.
deploy: setup
	$(BIN)/python -m deployments.deploy

worker: setup
	CODEDANCE_HOME=$(CURDIR) $(BIN)/prefect worker start --pool codedance-process --type process

clean:
	rm -rf .codedance .pytest_cache
