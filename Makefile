# chaoslab. `make test` is what CI runs; `make lab-up` brings the stack up.
PY ?= .venv/bin/python
TEST_TYPES := unit property integration e2e stress race performance chaos proxy
STAMP := .venv/.installed

.PHONY: install test bench lab-up lab-down lab-status proxy clean $(addprefix test-,$(TEST_TYPES))

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,fast]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q tests

$(addprefix test-,$(TEST_TYPES)): test-%: $(STAMP)
	$(PY) -m pytest -q -m $* tests

lab-up: $(STAMP)
	$(PY) -m lab up

lab-down: $(STAMP)
	$(PY) -m lab down

lab-status: $(STAMP)
	$(PY) -m lab status

bench: $(STAMP)
	$(PY) bench/proxy_bench.py
	$(PY) bench/stack_bench.py
	$(PY) bench/breaker_bench.py
	$(PY) -m lab up && $(PY) bench/clients_bench.py

proxy: $(STAMP)
	$(PY) -m lab.proxy -host 127.0.0.1

clean:
	rm -rf .venv .pytest_cache .hypothesis build dist *.egg-info
