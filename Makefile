# chaoslab: `make test` is what CI runs.
PY ?= .venv/bin/python
PIP ?= .venv/bin/pip
TEST_TYPES := unit property integration e2e stress race performance chaos proxy

.PHONY: install test bench proxy clean $(addprefix test-,$(TEST_TYPES))

.venv/bin/python:
	python3 -m venv .venv

install: .venv/bin/python
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[test,fast]'

test: install
	$(PY) -m pytest -q tests

$(addprefix test-,$(TEST_TYPES)): test-%: install
	$(PY) -m pytest -q -m $* tests

bench: install
	$(PY) bench/proxy_bench.py

proxy: install
	$(PY) -m lab.proxy -host 127.0.0.1

clean:
	rm -rf .venv .pytest_cache .hypothesis build dist *.egg-info
