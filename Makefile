# Two commands for a fresh machine: `make run` and `make test`. Both build .venv from this repo's files.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PLUGINS := $(wildcard plugins/*/pyproject.toml)
STAMP := $(VENV)/.installed
CHROMIUM := /usr/bin/chromium

.PHONY: run test test-sqlite test-postgres install clean proof

$(STAMP): pyproject.toml $(PLUGINS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]' $(foreach p,$(PLUGINS),-e $(dir $(p)))
	touch $(STAMP)

install: $(STAMP)

## Debian's Chromium, which the console's browser tests drive through Playwright (no `playwright install`).
## Without it (no root, no apt) those tests skip and say so.
$(CHROMIUM):
	@DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 \
	  || (DEBIAN_FRONTEND=noninteractive apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium) \
	  || echo "could not install chromium with apt-get: the console browser tests will be skipped"

## The gateway on its embedded default: SQLite plus every partner simulator, seeded with fictional data.
run: $(STAMP)
	$(BIN)/gateway demo

## The whole suite, on SQLite and on PostgreSQL (PostgreSQL tests skip, and say so, where no server answers).
test: $(STAMP) $(CHROMIUM)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## The long proofs (issue 8), each writing its results into docs/: the chaos runs and the backlog
## drain (docs/reliability.*), the security tests at full length, and the benchmarks against a bare
## relay and Node-RED (docs/benchmarks.*). Hours, not minutes; traffic only to 127.0.0.1.
proof: $(STAMP) $(CHROMIUM)
	$(BIN)/python -m tests.chaos --count 10000 --backend sqlite --processes 1 --kills 5 --out docs/reliability.json
	$(BIN)/python -m tests.chaos --count 10000 --backend postgres --processes 3 --kills 5 --out docs/reliability.json
	$(BIN)/python -m tests.chaos --scenario drain --backlog 3600 --policy patient --retry-scale 0.1 --out docs/reliability.json
	$(BIN)/python -m tests.chaos --render docs/reliability.json
	SCHAKEL_PROOF=1 SCHAKEL_FUZZ_EXAMPLES=100 SCHAKEL_FUZZ_RUNS=100000 $(BIN)/python -m pytest tests/security tests/test_chaos.py -q
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) var .pytest_cache
