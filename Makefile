# GeminiVideo Workers. First two commands on a fresh machine: `make demo`, `make test`.
SHELL := /bin/bash
PY := .venv/bin/python
PYTEST_ARGS ?=

.PHONY: setup demo test test-fast test-reliability bench lint up down start stop

.setup-done: pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch .setup-done

setup: .setup-done

demo: .setup-done
	$(PY) -m geminivideo.cli demo

test: .setup-done
	$(PY) -m pytest tests $(PYTEST_ARGS)

test-fast: .setup-done
	$(PY) -m pytest tests -m "not slow" $(PYTEST_ARGS)

test-reliability: .setup-done
	$(PY) -m pytest tests/reliability $(PYTEST_ARGS)

bench: .setup-done
	$(PY) -m bench.report --run  # every benchmark as the README reports it, then the table

lint: .setup-done
	.venv/bin/ruff check src tests bench
	.venv/bin/mypy

start: .setup-done
	bash scripts/start-workers.sh --with-flower --with-api

stop:
	bash scripts/stop-workers.sh

up:
	docker compose -f docker-compose.yml -f docker-compose.workers.yml up -d

down:
	docker compose -f docker-compose.yml -f docker-compose.workers.yml down
