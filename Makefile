# mood-monitor developer commands. `make` lists them.
DURATION ?= 120
SOAK_S ?= 3600
SOAK_RATE ?= 350
PYTEST_ARGS ?=
.DEFAULT_GOAL := help
.PHONY: help format setup stack-up stack-down stack-status demo test test-unit faults fuzz reliability lint bench bench-hostile soak train-default evaluate-default lock audit

help: ## list the commands
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-18s %s\n", $$1, $$2}'

setup: ## create .venv, install the locked dependencies + mood-monitor, fetch Kafka jars, install redis-server (cached)
	@bash scripts/setup.sh

lock: ## re-resolve pyproject.toml into requirements-dev.lock + requirements.lock (hash-pinned; UPGRADE=1 for newest)
	@test -x .venv/bin/uv || .venv/bin/python -m pip install -q "$$(grep -o 'uv==[0-9.]*' pyproject.toml)"
	@bash scripts/lock.sh

audit: setup ## known advisories (pip-audit) against the locked versions; exit 2 when the database is unreachable
	@bash scripts/audit.sh

stack-up: setup ## start the local Kafka + Redis stack
	@.venv/bin/mood-monitor stack up

stack-down: ## stop the local stack
	@.venv/bin/mood-monitor stack down || true

stack-status: ## is the local stack up?
	@.venv/bin/mood-monitor stack status

demo: stack-up ## run the whole pipeline locally for DURATION seconds (default 120)
	@.venv/bin/mood-monitor demo --duration $(DURATION)

test: stack-up ## the whole test suite: unit, integration and fault tests, on the real local stack
	@.venv/bin/pytest tests $(PYTEST_ARGS)

test-unit: setup ## unit tests only (no servers)
	@.venv/bin/pytest tests/unit $(PYTEST_ARGS)

faults: stack-up ## the fault suite only
	@.venv/bin/pytest -m faults tests $(PYTEST_ARGS)

fuzz: setup ## the property tests with the long random Hypothesis profile
	@HYPOTHESIS_PROFILE=fuzz .venv/bin/pytest -m "not integration" -p no:cacheprovider \
		tests/unit/test_properties.py tests/unit/connectors $(PYTEST_ARGS)

reliability: stack-up ## run the fault suite and write docs/reliability.md
	@MOOD_RELIABILITY_REPORT=docs/reliability.md .venv/bin/pytest -m faults tests -s $(PYTEST_ARGS)

lint: setup ## the gates: ruff (lint + format check), mypy --strict, the layering contract (import-linter)
	@.venv/bin/ruff check monitor connectors devstack tests bench scripts
	@.venv/bin/ruff format --check monitor connectors devstack tests bench scripts
	@.venv/bin/mypy
	@.venv/bin/lint-imports --no-cache

format: setup ## apply ruff format
	@.venv/bin/ruff format monitor connectors devstack tests bench scripts

bench: stack-up ## the throughput/latency benchmark (prints a table and a JSON line)
	@.venv/bin/python bench/pipeline.py

soak: stack-up ## the daemon for SOAK_S seconds (default 3600) at SOAK_RATE posts/s: writes docs/soak.md + .png
	@.venv/bin/python bench/soak.py --duration-s $(SOAK_S) --rate $(SOAK_RATE)

bench-hostile: setup ## host CPU per record of a generated hostile corpus, per class (bench/hostile.py)
	@.venv/bin/python bench/hostile.py

train-default: setup ## retrain the offline default model into monitor/model/weights/default
	@nice -n 5 .venv/bin/python scripts/train_default.py

evaluate-default: setup ## evaluate the default model on the TweetEval and GoEmotions test splits
	@bash scripts/evaluate_default.sh
