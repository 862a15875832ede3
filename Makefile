# Two commands on a fresh machine with only Python: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Django 4.2 LTS gets its own venv: the main one carries 5.2 LTS.
VENV42 ?= .venv-django42
STAMP42 := $(VENV42)/.installed

.PHONY: venv test test-django42 lint demo bench soak clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

$(STAMP42): pyproject.toml
	$(PYTHON) -m venv $(VENV42)
	$(VENV42)/bin/python -m pip install -q --upgrade pip
	$(VENV42)/bin/python -m pip install -q -e '.[test]' 'Django>=4.2,<5.0'
	touch $(STAMP42)

lint: $(STAMP)
	$(PY) -m ruff check bundlekit django_adapter tests examples bench

# SQLite always; PostgreSQL and MariaDB too (they skip with a reason where the
# server does not answer, and fail in CI, where CI=true makes them required).
test: $(STAMP) lint
	$(PY) -m pytest -q
	BUNDLEKIT_TEST_DB=postgres $(PY) -m pytest -q -m "not sqlite_only" tests/django_adapter
	BUNDLEKIT_TEST_DB=mysql $(PY) -m pytest -q -m "not sqlite_only" tests/django_adapter
	$(MAKE) --no-print-directory test-django42

# The Django adapter on Django 4.2 LTS (SQLite).
test-django42: $(STAMP42)
	$(VENV42)/bin/python -m pytest -q tests/django_adapter

demo: $(STAMP)
	$(PY) examples/demo.py

# A full run fits a 35-minute budget on a 2-core machine (bench/run.py --help);
# e.g. make bench BENCH_ARGS="--budget 30".
bench: $(STAMP)
	$(PY) bench/run.py $(BENCH_ARGS)

# The long form of the reliability suite (crash, tamper, concurrency, fuzz, bombs)
# and every attack test of issue 10; it rewrites docs/RELIABILITY.md from what it measured.
soak: $(STAMP)
	BUNDLEKIT_SOAK=1 $(PY) -m pytest -q -m "reliability or attack" && $(PY) tests/reliability/report.py --mode soak

clean:
	rm -rf $(VENV) $(VENV42) .pytest_cache .hypothesis build *.egg-info
