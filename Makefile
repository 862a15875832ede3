# Two commands on a fresh machine with only Python: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# The Django adapter also runs on the oldest and the newest supported pair, each in
# its own venv: Python 3.11 + Django 4.2 LTS and Python 3.13 + Django 6.x (the main
# venv carries 5.2 LTS).  The interpreters are looked for on PATH, then under pyenv
# (`pyenv root`); outside CI a missing one is skipped with a message, in CI
# (CI=true) it is an error.
works = $(if $(1),$(if $(shell $(1) -c 'import sys' >/dev/null 2>&1 && echo yes),$(1)))
find_python = $(firstword $(foreach p,$(shell command -v python$(1) 2>/dev/null) \
  $(sort $(wildcard $(shell pyenv root 2>/dev/null)/versions/$(1)*/bin/python$(1))),$(call works,$(p))))
ifeq ($(origin PYTHON_OLDEST),undefined)
PYTHON_OLDEST := $(call find_python,3.11)
endif
ifeq ($(origin PYTHON_NEWEST),undefined)
PYTHON_NEWEST := $(call find_python,3.13)
endif
VENV42 ?= .venv-django42
STAMP42 := $(VENV42)/.installed
VENV6 ?= .venv-django6
STAMP6 := $(VENV6)/.installed
# What the oldest and newest pairs run: the adapter, and the adoption guide.
PAIR_TESTS := tests/django_adapter tests/examples/test_adopting.py

.PHONY: venv test test-django42 test-django6 lint demo bench soak clean

$(STAMP): pyproject.toml
	@echo "Setting up $(VENV): installing bundlekit and its dependencies (first run only, a minute or so)..."
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

$(STAMP42): pyproject.toml
	@echo "Setting up $(VENV42): Python 3.11 with Django 4.2 LTS (first run only)..."
	$(PYTHON_OLDEST) -m venv $(VENV42)
	$(VENV42)/bin/python -m pip install -q --upgrade pip
	$(VENV42)/bin/python -m pip install -q -e '.[test]' 'Django>=4.2,<5.0'
	touch $(STAMP42)

$(STAMP6): pyproject.toml
	@echo "Setting up $(VENV6): Python 3.13 with Django 6 (first run only)..."
	$(PYTHON_NEWEST) -m venv $(VENV6)
	$(VENV6)/bin/python -m pip install -q --upgrade pip
	$(VENV6)/bin/python -m pip install -q -e '.[test]' 'Django>=6.0,<7.0'
	touch $(STAMP6)

lint: $(STAMP)
	$(PY) -m ruff check bundlekit django_adapter tests examples bench

# SQLite always; PostgreSQL and MariaDB too (they skip with a reason where the
# server does not answer, and fail in CI, where CI=true makes them required).
# The oldest and newest pairs run side by side (separate venvs and SQLite test
# databases; each pass's output is printed whole when it ends): it keeps the
# suite within its 10 minutes on a 2-core machine.
test: $(STAMP) lint
	$(PY) -m pytest -q
	BUNDLEKIT_TEST_DB=postgres $(PY) -m pytest -q -m "not sqlite_only" tests/django_adapter
	BUNDLEKIT_TEST_DB=mysql $(PY) -m pytest -q -m "not sqlite_only" tests/django_adapter
	$(MAKE) --no-print-directory -j2 --output-sync=target test-django42 test-django6

# The oldest pair: Python 3.11 + Django 4.2 LTS (SQLite).
test-django42:
ifeq ($(PYTHON_OLDEST),)
	@if [ "$$CI" = true ]; then echo "make: no Python 3.11 on PATH or under pyenv: the Django 4.2 pass cannot run" >&2; exit 1; fi
	@echo "SKIPPED the Python 3.11 + Django 4.2 pass: no python3.11 on PATH or under pyenv (e.g. pyenv install 3.11)"
else
	@$(MAKE) --no-print-directory $(STAMP42)
	$(VENV42)/bin/python -m pytest -q $(PAIR_TESTS)
endif

# The newest pair: Python 3.13 + Django 6.x (SQLite).
test-django6:
ifeq ($(PYTHON_NEWEST),)
	@if [ "$$CI" = true ]; then echo "make: no Python 3.13 on PATH or under pyenv: the Django 6 pass cannot run" >&2; exit 1; fi
	@echo "SKIPPED the Python 3.13 + Django 6 pass: no python3.13 on PATH or under pyenv (e.g. pyenv install 3.13)"
else
	@$(MAKE) --no-print-directory $(STAMP6)
	$(VENV6)/bin/python -m pytest -q $(PAIR_TESTS)
endif

demo: $(STAMP)
	$(PY) examples/demo.py

# A full run fits a 60-minute budget on a 2-core machine (bench/run.py --help): the
# entry-order comparison at 100,000 transactions needs most of it, loaddata on three
# servers being the slow side;
# e.g. make bench BENCH_ARGS="--budget 30".
bench: $(STAMP)
	$(PY) bench/run.py $(BENCH_ARGS)

# The long form of the reliability suite (crash, tamper, concurrency, fuzz, bombs)
# and every attack test of issue 10; it rewrites docs/RELIABILITY.md from what it measured.
soak: $(STAMP)
	BUNDLEKIT_SOAK=1 $(PY) -m pytest -q -m "reliability or attack" && $(PY) tests/reliability/report.py --mode soak

clean:
	rm -rf $(VENV) $(VENV42) $(VENV6) .pytest_cache .hypothesis build dist *.egg-info
