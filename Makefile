# Fresh machine: `make demo` installs and runs the demo; `make test` installs and runs the tests.
PYTHON ?= python3
PIP := $(PYTHON) -m pip

.PHONY: install demo test bench bench-quick postgres

install:
	# the local CPU wheel first, or sentence-transformers pulls CUDA packages
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[all,test,bench]"

demo: install
	$(PYTHON) -m ctxengine demo

test: install
	$(PYTHON) -m pytest -q -p no:cacheprovider

bench: install
	$(PYTHON) -m benchmarks

bench-quick: install
	$(PYTHON) -m benchmarks --quick

postgres:
	# a loopback PostgreSQL for the store tests; prints the URL to export
	bash .ci/postgres.sh
