# fedspec — every target sets itself up on a fresh machine (Python 3.11 and network to PyPI).
# `make demo` runs the main job; `make test` runs lint, types and the whole test suite.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
UV_VERSION := 0.13.8
STAMP  := $(VENV)/.installed
# Quiet, offline-friendly defaults for the libraries we drive (analytics and telemetry off).
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1

.PHONY: install bytecode demo demo-fabric fabric network-up network-down test lint typecheck unit bench lock clean distclean

install: $(STAMP)

# The lock pins the whole dependency closure with hashes; uv installs it exactly.
$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip sync --compile-bytecode --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install --python $(BIN)/python --no-deps -e .
	@touch $@

# Bytecode compiled ahead: where PYTHONDONTWRITEBYTECODE is set (CI sets it) no process
# caches what it compiles, and every `fedspec` command, node process and worker compiled
# ~5,000 modules from source again (20 of a simulation's 58 s; `fedspec --help` 1.1 s →
# 0.5 s). The site-packages at install (uv's --compile-bytecode), the project's own sources
# before each run (compileall skips what is current).
SOURCES := fedspec chaincode ledger_client federated flows registry fabric_network benchmarks
bytecode: install
	@$(BIN)/python -m compileall -q -j 0 $(SOURCES) > /dev/null

demo: install bytecode
	$(BIN)/fedspec demo

# Hyperledger Fabric's binaries: on PATH, cached per machine, or built once (see the script).
fabric:
	scripts/fabric-binaries

# The same demo with every round committed on a local Fabric network (left running).
demo-fabric: install fabric
	$(BIN)/fedspec demo --ledger fabric

network-up: install fabric
	$(BIN)/fedspec network up

network-down: install
	$(BIN)/fedspec network down

# Style, format and the layer contracts (pyproject's [tool.importlinter]: imports only downward).
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy fedspec chaincode ledger_client federated flows registry fabric_network

unit: install
	$(BIN)/python -m pytest -m "not integration" -q

# The Fabric tests need Fabric's binaries: CI (CI=true) requires them, elsewhere the tests
# are skipped with the reason when they cannot be had. The suite runs on every logical core
# (pytest-xdist; tests/conftest.py keeps the workers apart) and names its slowest tests.
PYTEST_PARALLEL ?= -n logical --dist loadgroup
test: install bytecode
	@if [ "$$CI" = true ]; then scripts/fabric-binaries; else scripts/fabric-binaries || true; fi
	$(MAKE) --no-print-directory lint typecheck
	FEDSPEC_REQUIRE_FABRIC=$${FEDSPEC_REQUIRE_FABRIC:-$$( [ "$$CI" = true ] && echo 1 )} \
		$(BIN)/python -m pytest -q $(PYTEST_PARALLEL) --durations=25

# Benchmarks print figures and ratios against baselines measured in the same run; they are
# not tests and have no pass/fail threshold.
bench: install
	$(BIN)/python -m benchmarks.ledger
	$(BIN)/python -m benchmarks.aggregation
	$(BIN)/python -m benchmarks.convergence
	$(BIN)/python -m benchmarks.round_time
	$(BIN)/python -m benchmarks.specialization
	$(BIN)/python -m benchmarks.specialization_budget
	$(BIN)/python -m benchmarks.simulate
	$(BIN)/python -m benchmarks.read_paths
	$(BIN)/python -m benchmarks.startup
	$(BIN)/python -m benchmarks.scale
	$(BIN)/python -m benchmarks.secagg
	$(BIN)/python -m benchmarks.bagging
	$(BIN)/python -m benchmarks.examples
	$(BIN)/python -m benchmarks.sensor
	$(BIN)/python -m benchmarks.dp_sgd
	scripts/fabric-binaries && $(BIN)/python -m benchmarks.ledger_fabric

# Regenerate the lock after changing a pin in pyproject.toml.
lock:
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 --universal \
		--generate-hashes --no-header -o requirements.lock

clean:
	rm -rf .fedspec .pytest_cache .mypy_cache .ruff_cache build *.egg-info

distclean: clean
	rm -rf $(VENV)
