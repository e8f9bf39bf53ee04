# The few verbs people type. `make ci` is exactly what CI runs after setup.
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: help setup demo test test-fast lint typecheck ci bench train-quick train-full clean

help:  ## list the verbs
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

setup:  ## install redis-server, a venv, torch (CPU), the project and the base model
	bash scripts/bootstrap.sh

demo: setup  ## embedded broker + Redis + quick model + worker + sample stream with a burst
	$(BIN)/finpulse demo

test: setup  ## lint, type-check, then the whole test suite against real broker + Redis
	$(MAKE) ci

ci:  ## what CI runs once set up
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest $(PYTEST_ARGS)

test-fast:  ## unit tests only (no services, no browser, no training)
	$(BIN)/pytest -m "not integration and not slow and not faults and not browser" $(PYTEST_ARGS)

lint:  ## ruff lint + format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck:  ## mypy over the packages
	$(BIN)/mypy

train-quick:  ## a usable model in <= 5 min on a 2-core CPU
	$(BIN)/finpulse train --profile quick --output artifacts/model

train-full:  ## the best-quality recipe
	$(BIN)/finpulse train --profile full --output artifacts/model-full

bench:  ## benchmarks (see BENCHMARKS.md)
	$(BIN)/python -m bench.bench_predictor --model artifacts/model
	$(BIN)/python -m bench.bench_windows

clean:  ## remove caches (keeps the venv and artifacts)
	rm -rf .pytest_cache .mypy_cache .ruff_cache .hypothesis
