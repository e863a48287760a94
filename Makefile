VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install run test lint fmt bench

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

## Set everything up and run the portal on http://127.0.0.1:8000/
run: install
	bash deploy/quickstart.sh

## Lint, then the whole test suite (needs Postgres and Redis on 127.0.0.1)
test: install lint
	$(VENV)/bin/pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	KUBEPROBE_DEBUG=1 $(VENV)/bin/mypy apps kubeprobe_site probe_sdk

fmt: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .
