# fleetops: the two commands are `make up` and `make test`; everything they need is set up here.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VENV   := .venv
PY     := $(VENV)/bin/python
BIN    := $(VENV)/bin
APPS   := apps/common apps/info apps/data apps/testing
PYSRC  := apps tools tests molecule roles bench inventories library callback_plugins connection_plugins filter_plugins
STAMP  := $(VENV)/.installed

# The local fleet this checkout drives: its podman objects are prefixed with FLEET_NAME and its
# loopback ports start at FLEET_PORT_BASE (HTTP at +80, HTTPS at +443), so fleets coexist.
export FLEET_NAME      ?= fleetops
export FLEET_PORT_BASE ?= 8000
export CONTAINERS_CONF := $(CURDIR)/.config/containers/containers.conf
export PATH            := $(CURDIR)/$(VENV)/bin:$(PATH)
export ANSIBLE_FORCE_COLOR ?= 0
PLAYBOOK := $(BIN)/ansible-playbook
# `make test` runs its own fleets (Molecule scenarios, the e2e fleet), never the one above.
TEST_FLEET_NAME      ?= $(FLEET_NAME)-test
TEST_FLEET_PORT_BASE ?= $(shell echo $$(( $(FLEET_PORT_BASE) + 20000 )))

.PHONY: help deps host-deps venv image lint unit molecule molecule-roles molecule-fleet test up down logs alerts bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

host-deps: ## install the Debian packages that are missing (apt, only when needed)
	@scripts/install-host-deps.sh

$(STAMP): requirements-dev.txt $(addsuffix /pyproject.toml,$(APPS))
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	@$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt $(addprefix -e ,$(APPS))
	@touch $@

venv: $(STAMP) ## the project venv (.venv): Ansible, Molecule, linters, the apps in editable mode

# promtool alone (the rules' tests), from Debian's prometheus .deb: installing the package would
# start a Prometheus server on the controller.
$(BIN)/promtool: | $(STAMP)
	@scripts/install-deb-tool.sh prometheus usr/bin/promtool $@

deps: host-deps venv $(BIN)/promtool ## everything `make up` and `make test` need; checks requirements.yml's collection pins
	@$(PY) tools/check_collections.py requirements.yml

image: host-deps ## the Debian 12 systemd image of the fleet's hosts (debootstrap; cached)
	@scripts/build-image.sh

lint: deps ## ruff, yamllint, ansible-lint (production profile), playbook syntax, GitHub workflows' schema
	$(BIN)/ruff check $(PYSRC)
	$(BIN)/ruff format --check $(PYSRC)
	$(BIN)/yamllint --strict .
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	$(BIN)/ansible-lint --profile production -q
	$(PLAYBOOK) --syntax-check site.yml playbooks/*.yml

unit: deps ## the apps' tests against a real MariaDB (coverage gate: 100 % lines, 95 % branches), role logic
	rm -f .coverage .coverage.*
	$(BIN)/pytest -q tests/unit
	$(BIN)/coverage run -m pytest apps
	$(BIN)/coverage report
	$(BIN)/coverage json -q -o coverage.json
	$(PY) tools/coverage_gate.py coverage.json --lines 100 --branches 95

# Every scenario but default (one role each), and default (the whole fleet), on the test fleet.
ROLE_SCENARIOS := $(filter-out default,$(notdir $(wildcard molecule/*)))
MOLECULE := FLEET_NAME=$(TEST_FLEET_NAME) FLEET_PORT_BASE=$(TEST_FLEET_PORT_BASE) $(BIN)/molecule

molecule: deps image ## every Molecule scenario: the whole fleet (default: site.yml + e2e) beside the role scenarios
	@scripts/beside-fleet.sh molecule-roles

molecule-roles: deps image ## each role's own Molecule scenario, one after the other
	@for s in $(ROLE_SCENARIOS); do $(MOLECULE) test -s $$s || exit 1; done

molecule-fleet: deps image ## the whole-fleet scenario: provision, site.yml, the e2e suite, destroy
	$(MOLECULE) test -s default

test: deps image ## everything CI runs: the whole-fleet scenario beside lint, unit and the role scenarios
	@scripts/beside-fleet.sh lint unit molecule-roles

up: deps ## build, provision and converge the local fleet, smoke-test it, print the URLs
	@start=$$(date +%s); \
	$(PLAYBOOK) playbooks/provision.yml; \
	$(PLAYBOOK) site.yml; \
	$(PY) tools/smoke.py "http://127.0.0.1:$$(($(FLEET_PORT_BASE) + 80))"; \
	echo; \
	echo "fleet '$(FLEET_NAME)' is up in $$(( $$(date +%s) - start )) s:"; \
	echo "  http://127.0.0.1:$$(($(FLEET_PORT_BASE) + 80))/"; \
	echo "  https://127.0.0.1:$$(($(FLEET_PORT_BASE) + 443))/   (self-signed certificate)"; \
	echo "  monitoring: https://127.0.0.1:$$(($(FLEET_PORT_BASE) + 90))/   (mon1; CA: .fleet/$(FLEET_NAME)/ca/ca.crt)"; \
	echo "    users viewer and admin: $(BIN)/ansible-vault view .fleet/$(FLEET_NAME)/secrets.yml | grep monitoring"

logs: deps ## one request's lines in the central logs of every monitoring host: make logs ID=<X-Request-ID>
	@test -n "$(ID)" || { echo "usage: make logs ID=<the X-Request-ID of a response>"; exit 2; }
	@$(PLAYBOOK) playbooks/logs.yml -e request_id=$(ID)

alerts: deps ## print the alerts the local fleet's Alertmanager sends, as they come (Ctrl-C stops)
	@$(PY) tools/alert_receiver.py

down: deps ## remove the local fleet; keeps the database disk unless DESTROY_DATA=1
	$(PLAYBOOK) playbooks/deprovision.yml $(if $(filter 1 yes true,$(DESTROY_DATA)),-e destroy_data=true,)

bench: deps image ## ratios on a fleet of its own (FLEET_NAME-bench): HAProxy vs direct, p99 at 80 %, rollout, no-op converge
	$(PY) bench/run.py

clean: ## remove the venv and test/build leftovers (never touches a running fleet)
	rm -rf $(VENV) .coverage .coverage.* coverage.json .pytest_cache .ruff_cache
