# chaoslab. `make test` is what CI runs; `make lab-up` brings the stack up.
PY ?= .venv/bin/python
TEST_TYPES := unit property integration e2e stress race performance chaos proxy security
STAMP := .venv/.installed

# The compose tests: a Docker engine of the lab's own in a network namespace, stand-in images built from
# Debian's and PyPI's packages (no registry here), and the chaos tests on the compose backend inside it.
ENGINE := compose/engine/engine.sh
ENGINE_HOST := unix:///run/chaoslab-docker/docker.sock
# what depends on the backend (the runner's own features, report, targets and plugin, run on the local one)
COMPOSE_TESTS := $(addprefix tests/chaos/,test_backend_contract.py test_heal_matrix.py test_ledger_first.py \
	test_scenarios.py test_mutant_matrix.py test_pytest_plugin_compose.py)
STAND_INS := LAB_POSTGRES_IMAGE=chaoslab/postgres:dev LAB_KAFKA_IMAGE=chaoslab/kafka:dev LAB_PROXY_IMAGE=chaoslab/proxy:dev

.PHONY: install browser test test-mutants test-long test-compose compose-engine compose-images bench lab-up lab-down lab-status proxy clean \
	$(addprefix test-,$(TEST_TYPES))

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,fast]'
	touch $(STAMP)

install: $(STAMP)

# A headless browser for the HTML report's tests (tests/chaos/test_html_report.py): Debian's chromium, unless a
# chromium or Chrome is already on PATH (GitHub's Ubuntu runners have google-chrome).
browser:
	command -v chromium || command -v chromium-browser || command -v google-chrome || \
		{ apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }

test: $(STAMP)
	$(PY) -m pytest -q --durations=15 tests

# ruff and mypy --strict on lab/ (configured in pyproject.toml); CI runs it after `make test`
lint: $(STAMP)
	$(PY) -m ruff check lab
	$(PY) -m mypy

# The whole check-by-mutant matrix (lab/scenario/matrix.py): every listed check must FAIL on its mutant.
# `make test` runs none of its cells (they take minutes: a scenario run per cell); this runs every one, and CI runs it.
test-mutants: $(STAMP)
	LAB_MUTANT_MATRIX=full $(PY) -m pytest -q tests/chaos/test_mutant_matrix.py

# What make test's 15-minute budget does not hold, run by CI after it (LAB_LONG_TESTS=1): the read-back race at 400
# rounds (make test runs 100), the cross-proxy p99 stress test on the plain asyncio loop (make test: uvloop) and the
# Postgres server killed 16 times under load (make test: 6).
test-long: $(STAMP)
	LAB_LONG_TESTS=1 $(PY) -m pytest -q tests/integration/test_kafka_read_back.py -k out_of_order
	LAB_LONG_TESTS=1 $(PY) -m pytest -q tests/proxy/test_security_stress.py -k "p99 and asyncio"
	LAB_LONG_TESTS=1 $(PY) -m pytest -q tests/integration/test_postgres_server_kill.py

$(addprefix test-,$(TEST_TYPES)): test-%: $(STAMP)
	$(PY) -m pytest -q -m $* tests

compose-engine:
	bash $(ENGINE) start

compose-images: compose-engine $(STAMP)
	DOCKER_HOST=$(ENGINE_HOST) PYTHON=$(PY) bash compose/images/build.sh

test-compose: compose-images
	bash $(ENGINE) exec env $(STAND_INS) LAB_TEST_BACKEND=compose $(PY) -m pytest -q $(COMPOSE_TESTS)

lab-up: $(STAMP)
	$(PY) -m lab up

lab-down: $(STAMP)
	$(PY) -m lab down

lab-status: $(STAMP)
	$(PY) -m lab status

bench: $(STAMP)
	$(PY) bench/proxy_bench.py
	$(PY) bench/tail_bench.py
	$(PY) bench/stack_bench.py
	$(PY) bench/breaker_bench.py
	$(PY) bench/runner_bench.py
	$(PY) bench/locust_bench.py
	$(PY) -m lab up && $(PY) bench/clients_bench.py && $(PY) bench/producer_bench.py
	$(PY) bench/trace_bench.py --stack

proxy: $(STAMP)
	$(PY) -m lab.proxy -host 127.0.0.1

clean:
	rm -rf .venv .pytest_cache .hypothesis build dist *.egg-info
