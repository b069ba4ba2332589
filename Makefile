# gymrpc developer entry points. Everything runs inside .venv, which the first target
# that needs it creates. Each target installs only what it needs, once per change of
# pyproject.toml: `make serve` the lean runtime (no torch), `make proto` the code
# generator, `make test` and `make check` everything (the `dev` extra).

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
# One stamp per install level; each is redone when pyproject.toml changes.
BASE_STAMP := $(VENV)/.created
RUNTIME_STAMP := $(VENV)/.installed-runtime
PROTO_STAMP := $(VENV)/.installed-proto
DEV_STAMP := $(VENV)/.installed-dev
BENCH_STAMP := $(VENV)/.installed-bench
# On a machine where pip would pull torch's multi-GB CUDA build, point this at
# PyTorch's CPU index: make test TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
TORCH_INDEX_URL ?=
PIP := $(PY) -m pip install --quiet --disable-pip-version-check

ADDRESS ?=
PYTEST_ARGS ?=
SERVE_ARGS ?=
BENCH_ARGS ?=

.PHONY: help venv proto proto-check proto-breaking lint fmt docs test check bench bench-transport bench-scores bench-sharding serve clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(BASE_STAMP):
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	touch $(BASE_STAMP)

$(RUNTIME_STAMP): pyproject.toml $(BASE_STAMP)
	$(PIP) -e .
	touch $(RUNTIME_STAMP)

$(PROTO_STAMP): pyproject.toml $(BASE_STAMP)
	$(PIP) -e '.[proto]'
	touch $(PROTO_STAMP)

$(DEV_STAMP): pyproject.toml $(BASE_STAMP)
	$(if $(TORCH_INDEX_URL),$(PIP) torch==2.13.0 --index-url $(TORCH_INDEX_URL))
	$(PIP) -e '.[dev]'
	touch $(DEV_STAMP) $(RUNTIME_STAMP) $(PROTO_STAMP)

venv: $(DEV_STAMP)  ## create .venv with everything the tests and examples need

proto: $(PROTO_STAMP)  ## regenerate src/gymrpc/v1 from proto/
	$(PY) tools/gen_proto.py --out src

proto-check: $(PROTO_STAMP)  ## fail if src/gymrpc/v1 is not what make proto would write
	$(PY) tools/gen_proto.py --check

proto-breaking: $(PROTO_STAMP)  ## fail if proto/ breaks the last released schema (buf breaking)
	$(PY) tools/gen_proto.py --breaking

lint: $(DEV_STAMP)  ## ruff, mypy --strict on hand-written code, buf lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(PY) tools/gen_proto.py --buf-lint

fmt: $(DEV_STAMP)  ## format Python and proto sources in place
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .
	$(BIN)/buf format -w --path proto/gymrpc

docs: $(DEV_STAMP)  ## regenerate the generated parts of README.md (the flag table)
	$(PY) tools/gen_docs.py

test: $(DEV_STAMP)  ## run the test-suite
	$(BIN)/pytest $(PYTEST_ARGS)

check: proto-check proto-breaking lint test  ## what CI runs

$(BENCH_STAMP): $(DEV_STAMP)
	$(PIP) -e '.[dev,bench]'
	touch $(BENCH_STAMP)

bench: bench-transport bench-scores bench-sharding  ## every benchmark below, into benchmarks/results/

bench-transport: $(BENCH_STAMP)  ## gymrpc against the gRPC floor, in-process vectorizers and dm_env_rpc
	$(PY) benchmarks/bench.py $(BENCH_ARGS)

bench-scores: $(BENCH_STAMP)  ## evaluation sessions against ordinary ones; episodes recorded per second
	$(PY) benchmarks/bench_scores.py

bench-sharding: $(BENCH_STAMP)  ## one batch over 1-8 servers, and the server's --workers
	$(PY) benchmarks/bench_sharding.py

# The extras that the serving flags ask for (in SERVE_ARGS or the GYMRPC_* variables),
# installed on top of the lean runtime by `make serve`, once each.
SERVE_EXTRAS := $(strip \
	$(if $(findstring --http-address,$(SERVE_ARGS))$(GYMRPC_HTTP_ADDRESS),web) \
	$(if $(findstring --metrics-address,$(SERVE_ARGS))$(GYMRPC_METRICS_ADDRESS),metrics) \
	$(if $(findstring postgresql,$(SERVE_ARGS) $(GYMRPC_DATABASE)),postgres))
EMPTY :=
SPACE := $(EMPTY) $(EMPTY)
COMMA := ,
SERVE_EXTRAS_STAMP := $(if $(SERVE_EXTRAS),$(VENV)/.installed-serve-$(subst $(SPACE),-,$(SERVE_EXTRAS)))

$(VENV)/.installed-serve-%: pyproject.toml $(RUNTIME_STAMP)
	$(PIP) -e '.[$(subst -,$(COMMA),$*)]'
	touch $@

serve: $(RUNTIME_STAMP) $(SERVE_EXTRAS_STAMP)  ## run the server (blocks); ADDRESS=host:port, SERVE_ARGS="--flags"
	$(BIN)/gymrpc-server $(if $(ADDRESS),--address $(ADDRESS)) $(SERVE_ARGS)

clean:  ## remove the virtualenv and caches
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
