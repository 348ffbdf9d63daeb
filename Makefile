# Every target builds its own virtual environment, so a bare machine with
# Python 3.11, pip and make is enough.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast bench clean chromium

$(STAMP): setup.cfg setup.py pyproject.toml signing/_belt.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m cli.demo $(DEMO_ARGS)

# The tests run a real PostgreSQL of their own: .ci/ensure-postgres installs the server when missing.
test: $(STAMP) chromium
	@sh .ci/ensure-postgres
	@sh .ci/ensure-openssl
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# Everything but the tests marked slow (tests/conftest.py: SLOW_MODULES), for quick rounds while developing.
test-fast: $(STAMP)
	@sh .ci/ensure-postgres
	@sh .ci/ensure-openssl
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

# The console's browser tests (tests/test_console.py) need the system's Chromium.
chromium:
	@sh .ci/ensure-chromium

bench: $(STAMP)
	@sh .ci/ensure-postgres
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var build *.egg-info .pytest_cache signing/_belt.*.so
