# One-command set-up: `make run` and `make test` install what they need and start the
# local services on loopback. See README.md.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# chromium and chromium-driver: the console's browser test (never a browser downloaded).
DEBIAN_PACKAGES := unixodbc unixodbc-dev libsqliteodbc odbc-postgresql postgresql chromium \
  chromium-driver
PYTEST_ARGS ?=
# Checkov pins its own dependency tree; it gets a venv of its own so it never fights the app's.
TOOLS_VENV := .venv-tools
TOOLS_REQUIREMENTS := "checkov>=3.3,<4"

.PHONY: deps run-deps system-deps tools test lint run bench clean

deps: run-deps tools

# What `make run` needs; checkov (tools) is only for `make test`.
run-deps: system-deps $(VENV)/.installed node_modules/.installed

tools: $(TOOLS_VENV)/.installed

# Installs the Debian packages only when something is missing; as root it installs them,
# otherwise it prints the exact command and stops.
system-deps:
	@missing=""; \
	for pkg in $(DEBIAN_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$pkg 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else \
	    echo "missing Debian packages:$$missing"; \
	    echo "run: sudo apt-get update && sudo apt-get install -y$$missing"; \
	    exit 1; \
	  fi; \
	fi

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

$(TOOLS_VENV)/.installed: Makefile
	@test -x $(TOOLS_VENV)/bin/python || $(PYTHON) -m venv $(TOOLS_VENV)
	@echo '*' > $(TOOLS_VENV)/.gitignore
	$(TOOLS_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(TOOLS_VENV)/bin/python -m pip install --quiet --disable-pip-version-check $(TOOLS_REQUIREMENTS)
	@touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: deps lint
	$(PY) -m pytest $(PYTEST_ARGS)

run: run-deps
	$(PY) -m devtools.run_local

# Each benchmark is a script; the modules they share (no __main__) are not run.
bench: deps
	@set -e; for script in benchmarks/*.py; do \
	  grep -q '__main__' $$script || continue; \
	  echo "== $$script"; $(PY) $$script; \
	done

clean:
	rm -rf $(VENV) $(TOOLS_VENV) node_modules .pytest_cache .ruff_cache .mypy_cache
