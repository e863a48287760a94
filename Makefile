VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install run test lint fmt bench services kube-build kube-up helm-build messages

# Translations (docs/i18n.md): the .po files are committed, the .mo files built here.
PO_FILES := $(wildcard locale/*/LC_MESSAGES/*.po apps/*/locale/*/LC_MESSAGES/*.po)
MO_FILES := $(PO_FILES:.po=.mo)
# Folders with no strings to translate; tests/core/test_i18n_catalogs.py extracts the same way.
MESSAGES_IGNORE := --ignore 'var/*' --ignore 'tests/*' --ignore 'bench/*' --ignore 'deploy/*' --ignore 'operator/*' --ignore 'probe_sdk/*' --ignore 'docs/*' --ignore 'static/vendor/*'

install: $(VENV)/.installed $(MO_FILES)

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev,trial]'
	touch $@

# Babel compiles them, so no GNU gettext is needed to install or run.
%.mo: %.po $(VENV)/.installed
	$(PY) -m kubeprobe_site.locale_build

## Extract the strings to translate into the zh_Hans catalogs (needs GNU gettext: apt-get install gettext)
messages: install
	KUBEPROBE_DEBUG=1 $(PY) manage.py makemessages -l zh_Hans --no-obsolete $(MESSAGES_IGNORE)
	KUBEPROBE_DEBUG=1 $(PY) manage.py makemessages -l zh_Hans -d djangojs --no-obsolete $(MESSAGES_IGNORE)

## Install (if missing) and start PostgreSQL and Redis on 127.0.0.1: a new machine's first command
services:
	bash deploy/dev/services

## Build the local Kubernetes control plane into ~/.cache/kubeprobe (once; cached after)
kube-build:
	bash deploy/dev/kube-build

## Build Helm into ~/.cache/kubeprobe (once; cached after), for the chart tests
helm-build:
	bash deploy/dev/helm-build

## Run a local Kubernetes control plane (etcd, apiserver, controllers, scheduler, kwok) until Ctrl-C
kube-up: install kube-build
	mkdir -p var/kube && $(PY) deploy/dev/kube_local.py up --nodes $(or $(NODES),3) --kubeconfig $(or $(KUBECONFIG_OUT),var/kube/admin.kubeconfig)

## Set everything up and run the portal on http://127.0.0.1:8000/
run: install
	bash deploy/quickstart.sh

## Lint, then the whole test suite (needs Postgres and Redis on 127.0.0.1)
test: install lint
	$(VENV)/bin/pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	KUBEPROBE_DEBUG=1 $(VENV)/bin/mypy apps kubeprobe_site probe_sdk operator/kubeprobe_operator

fmt: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .
