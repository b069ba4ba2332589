# gymrpc developer entry points. Everything runs inside .venv, which the first target
# that needs it creates; it is reinstalled only when pyproject.toml changes.

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed

ADDRESS ?=
PROTO_FILES := $(sort $(wildcard proto/gymrpc/v1/*.proto))
GEN_DIR := src/gymrpc/v1
PYTEST_ARGS ?=
SERVE_ARGS ?=
BENCH_ARGS ?=

.PHONY: help venv proto proto-check lint fmt test check bench serve clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)  ## create .venv and install the project with its dev extras

proto: $(STAMP)  ## regenerate src/gymrpc/v1 from proto/
	$(PY) tools/gen_proto.py --out src

proto-check: $(STAMP)  ## fail if src/gymrpc/v1 is not what make proto would write
	$(PY) tools/gen_proto.py --check

lint: $(STAMP)  ## ruff, mypy --strict on hand-written code, buf lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(PY) tools/gen_proto.py --buf-lint

fmt: $(STAMP)  ## format Python and proto sources in place
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .
	$(BIN)/buf format -w proto

test: $(STAMP)  ## run the test-suite
	$(BIN)/pytest $(PYTEST_ARGS)

check: proto-check lint test  ## what CI runs

BENCH_STAMP := $(VENV)/.installed-bench
$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)  ## benchmark against the gRPC floor, in-process vectorizers and dm_env_rpc
	$(PY) benchmarks/bench.py $(BENCH_ARGS)

serve: $(STAMP)  ## run the server; ADDRESS=host:port overrides GYMRPC_ADDRESS / 127.0.0.1:50051
	$(BIN)/gymrpc-server $(if $(ADDRESS),--address $(ADDRESS)) $(SERVE_ARGS)

clean:  ## remove the virtualenv and caches
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
