# Two commands do everything on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
# Empty: scripts/pick-python.sh chooses (the distribution's optimised build first).
PY ?=
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint unit fuzz bench sysdeps clean

# The compiled parts (setup.py: the data plane by mypyc, the metrics closure in C; optional,
# without a compiler the install goes on in pure Python) are built by the install, so a change
# to their sources reinstalls. NATIVE: the modules mypyc compiles (src/wardgate/_native.py).
NATIVE := $(shell sed -n 's/^    "\(wardgate\.[a-z_.]*\)",$$/\1/p' src/wardgate/_native.py \
	| tr . / | sed 's,^,src/,;s,$$,.py,')
$(STAMP): pyproject.toml setup.py mypyc.ini src/wardgate/_native.py src/wardgate/observe/_finish.c $(NATIVE)
	test -x $(BIN)/python || { py='$(PY)'; [ -n "$$py" ] || py=$$(scripts/pick-python.sh) || exit 1; \
	  echo "creating $(VENV) with $$py"; "$$py" -m venv $(VENV); }
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/wardgate demo

# System packages the tests start for real (postgresql, redis, chromium), and what builds
# the C part, whose tests compare it with the Python one (gcc, Python's headers).
sysdeps:
	@scripts/ensure-apt.sh postgresql:/usr/lib/postgresql chromium:chromium \
	  redis-server:redis-server redis-tools:redis-cli gcc:gcc python3-dev:python3-config

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q tests

# The whole suite on the compiled data plane, then the data plane's own tests again on its
# Python source: what runs where there is no compiler (src/wardgate/_native.py).
test: sysdeps $(STAMP) lint
	$(BIN)/pytest -q -p no:cacheprovider tests; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; \
	  [ $$rc -eq 0 ] || exit $$rc
	WARDGATE_PURE_PYTHON=1 $(BIN)/pytest -q -p no:cacheprovider tests/gateway tests/unit tests/auth \
	  tests/packaging/test_native.py; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

# A longer fuzz run (make test runs the same targets with a short budget): FUZZ_EXAMPLES
# examples per target, fresh random inputs each run.
FUZZ_EXAMPLES ?= 2000
fuzz: $(STAMP)
	WARDGATE_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest -q -p no:cacheprovider tests/fuzz

bench: $(STAMP)
	@scripts/ensure-apt.sh nginx:nginx haproxy:haproxy wrk:wrk redis-server:redis-server valgrind:valgrind linux-perf:perf
	$(BIN)/python bench/run.py
	$(BIN)/python bench/cpu_split.py
	$(BIN)/python bench/limits_bench.py
	$(BIN)/python bench/metrics_bench.py
	$(BIN)/python bench/detect_bench.py
	$(BIN)/python bench/detect_eval.py
	$(BIN)/python bench/scale_bench.py
	$(BIN)/python bench/hotpath.py --route plain
	$(BIN)/python bench/instructions.py
	$(BIN)/python bench/hotpath.py --route plain --metrics
	$(BIN)/python bench/hotpath.py --route jwt
	$(BIN)/python bench/hotpath.py --route jwt --metrics
	$(BIN)/python bench/hotpath.py --route jwt --metrics --detection
	$(BIN)/python bench/hotpath.py --route jwt-distinct --requests 40000
	$(BIN)/python bench/hotpath.py --route jwt-forged --requests 40000
	$(BIN)/python bench/auth_miss.py --tokens 20000 --repeat 3
	$(BIN)/python bench/live_split.py --scenario jwt-distinct
	$(BIN)/python bench/live_split.py --scenario jwt-forged
	$(BIN)/python bench/live_split.py --scenario plain
	$(BIN)/python bench/perf_split.py --scenario jwt-forged
	$(BIN)/python bench/perf_split.py --scenario jwt-distinct
	$(BIN)/python bench/live_split.py --scenario dpop
	$(BIN)/python bench/issuer_bench.py
	$(BIN)/python bench/dpop_bench.py
	$(BIN)/python bench/hotpath.py --route dpop --requests 20000
	$(BIN)/python bench/revoke_bench.py

clean:
	rm -rf $(VENV) .wardgate .pytest_cache .mypy_cache build
	find src -name "*.so" -delete
