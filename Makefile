# Fresh machine: `make demo` installs what the demo needs and runs it; `make test` installs
# the test extras and runs the suite (what CI's .ci/run calls).
#
# Python: the active virtual environment's if there is one; else python3, unless it is
# "externally managed" (Debian/Ubuntu's system Python refuses pip installs), in which case
# a .venv is created here and used.
EXTERNALLY_MANAGED := $(shell python3 -c "import sysconfig, os; print(int(os.path.exists(os.path.join(sysconfig.get_path('stdlib'), 'EXTERNALLY-MANAGED'))))" 2>/dev/null)
ifdef VIRTUAL_ENV
PYTHON ?= $(VIRTUAL_ENV)/bin/python
else ifeq ($(EXTERNALLY_MANAGED),1)
PYTHON ?= .venv/bin/python
else
PYTHON ?= python3
endif
PIP := $(PYTHON) -m pip

.PHONY: venv torch demo-install install demo test docs bench bench-quick postgres

venv:
	@if [ "$(PYTHON)" = ".venv/bin/python" ] && [ ! -x .venv/bin/python ]; then \
		echo "make: the system Python is externally managed; creating .venv"; python3 -m venv .venv; fi

torch: venv
	# the CPU wheel first, or sentence-transformers pulls CUDA packages
	$(PIP) install -q torch==2.13.0

demo-install: torch
	$(PIP) install -q -e ".[embeddings]"

install: torch
	$(PIP) install -q -e ".[all,test,bench]"

demo: demo-install
	$(PYTHON) -m ctxengine demo

test: install
	@if [ -z "$$CTXENGINE_TEST_POSTGRES_URL" ]; then \
		if url="$$(bash .ci/postgres.sh)"; then export CTXENGINE_TEST_POSTGRES_URL="$$url"; \
		else echo ""; echo "!!! make test: could not start PostgreSQL (.ci/postgres.sh failed):"; \
			echo "!!! the PostgreSQL store tests will be SKIPPED. Set CTXENGINE_TEST_POSTGRES_URL to run them."; echo ""; fi; \
	fi; $(PYTHON) -m pytest -q -p no:cacheprovider

docs: venv
	$(PIP) install -q -e ".[docs]"
	$(PYTHON) -m mkdocs build --strict --site-dir site

bench: install
	$(PYTHON) -m benchmarks

bench-quick: install
	$(PYTHON) -m benchmarks --quick

postgres:
	# a loopback PostgreSQL for the store tests; prints the URL to export
	bash .ci/postgres.sh
