# Store Credits Admin: developer tasks.
# Every target calls .venv/bin/... explicitly (nothing is activated). Written for POSIX
# make; GNU make 4.3 runs it. Knobs: `make test PYTEST_ARGS="-x -k ledger"`,
# `make bench DATABASE_URL=postgres://...`, `make run PORT=8001`.
.POSIX:
.SUFFIXES:

VENV = .venv
PY = $(VENV)/bin/python
PYTEST_ARGS ?= -n 2
BENCH_DATABASE_URL = postgres://postgres@127.0.0.1:5432/postgres
BENCH_FLAGS = --quick
HOST = 127.0.0.1
PORT = 8000

.PHONY: help venv run test lint check bench bench-full worker beat clean

help:
	@echo "make run         demo on http://$(HOST):$(PORT)/ (SQLite, eager Celery, file email)"
	@echo "make test        the test suite (PYTEST_ARGS='$(PYTEST_ARGS)')"
	@echo "make lint        ruff check ."
	@echo "make check       no missing migrations; ledger invariants hold"
	@echo "make bench       every tests/bench/bench_*.py --quick on DATABASE_URL (PostgreSQL)"
	@echo "make bench-full  the same at full size"
	@echo "make worker      Celery worker (set REDIS_URL)"
	@echo "make beat        Celery beat (set REDIS_URL)"
	@echo "make clean       caches and build leftovers (keeps .venv and var/)"

# --- virtualenv: (re)installed only when pyproject.toml is newer than the stamp -------------
venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@if [ ! -x $(PY) ]; then \
	    if command -v python3.11 >/dev/null 2>&1; then boot=python3.11; else boot=python3; fi; \
	    echo "creating $(VENV) with $$boot"; \
	    "$$boot" -m venv $(VENV); \
	fi
	@$(PY) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "$(VENV) has Python " + sys.version.split()[0] + "; 3.11+ is needed: rm -rf $(VENV), install python3.11, make venv")'
	$(PY) -m pip install --disable-pip-version-check -e '.[dev]'
	@touch $@

# --- the demo: works on a fresh clone with no environment variables at all -----------------
# DEBUG=1 is set for these commands only (dev SECRET_KEY, no HTTPS redirect).
run: venv
	@mkdir -p var/mail
	DEBUG=1 $(PY) manage.py migrate --noinput
	DEBUG=1 $(PY) manage.py seed_demo
	@echo ""
	@echo "Store Credits Admin demo: http://$(HOST):$(PORT)/"
	@echo "  admin / admin       Store admin"
	@echo "  support / support   Support admin"
	@echo "  agent / agent       Support agent"
	@echo "  ops / ops           Ops"
	@echo ""
	DEBUG=1 $(PY) manage.py runserver $(HOST):$(PORT)

# --- quality ---------------------------------------------------------------------------------
test: venv
	$(VENV)/bin/pytest $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .

# DEBUG defaults to 1 here only so that settings load without a SECRET_KEY; an exported
# DEBUG or SECRET_KEY wins. ledger_verify checks the database DATABASE_URL points at.
check: venv
	@mkdir -p var
	DEBUG=$${DEBUG:-1} $(PY) manage.py makemigrations --check --dry-run
	DEBUG=$${DEBUG:-1} $(PY) manage.py ledger_verify

# --- benchmarks (PostgreSQL; not part of the test suite) -------------------------------------
# Each script prints one JSON line on stdout (script names go to stderr). DATABASE_URL
# defaults to the local postgres database; DEBUG stays off (it would record every query);
# a throwaway SECRET_KEY is supplied when none is set.
bench: venv
	@DATABASE_URL="$${DATABASE_URL:-$(BENCH_DATABASE_URL)}"; export DATABASE_URL; \
	SECRET_KEY="$${SECRET_KEY:-bench-only-not-secret-0123456789-abcdefghijklmnopqrstuvwxyz}"; export SECRET_KEY; \
	rc=0; found=0; \
	for f in tests/bench/bench_*.py; do \
	    [ -f "$$f" ] || continue; found=1; \
	    echo "== $$f $(BENCH_FLAGS)" >&2; \
	    $(PY) "$$f" $(BENCH_FLAGS) || rc=1; \
	done; \
	if [ "$$found" = 0 ]; then echo "no tests/bench/bench_*.py found" >&2; rc=1; fi; \
	exit $$rc

bench-full:
	$(MAKE) bench BENCH_FLAGS=

# --- Celery: the same commands docker-compose.yml runs ---------------------------------------
# Pair with `REDIS_URL=redis://127.0.0.1:6379/0 make run` (without REDIS_URL tasks run
# eagerly inside the web process and a worker has nothing to do). DEBUG defaults to 1 as
# for `make run`, so both use the same demo settings and var/db.sqlite3.
worker: venv
	@[ -n "$${REDIS_URL:-}" ] || { echo "set REDIS_URL, e.g. REDIS_URL=redis://127.0.0.1:6379/0 make worker" >&2; exit 1; }
	DEBUG=$${DEBUG:-1} $(VENV)/bin/celery -A credits_admin worker -l info

beat: venv
	@[ -n "$${REDIS_URL:-}" ] || { echo "set REDIS_URL, e.g. REDIS_URL=redis://127.0.0.1:6379/0 make beat" >&2; exit 1; }
	DEBUG=$${DEBUG:-1} $(VENV)/bin/celery -A credits_admin beat -l info

# --- housekeeping: keeps .venv and var/ (the demo database, mail, exports) -----------------
# For a full reset: rm -rf .venv var
clean:
	rm -rf .pytest_cache .ruff_cache .hypothesis test-artifacts build dist *.egg-info
	rm -rf var/static var/test-media celerybeat-schedule celerybeat-schedule.*
	find . -path ./.venv -prune -o -type d -name __pycache__ -exec rm -rf {} +
