# Loupe's front door. `make up` and `make test` are the two commands a
# newcomer needs; everything they depend on is fetched by scripts/.
SHELL := /bin/bash
CARGO ?= cargo
LOUPE_CHDB_LIB ?= $(shell scripts/fetch-chdb.sh --print-path 2>/dev/null)
export LOUPE_CHDB_LIB

.PHONY: up test check lint fmt chdb setup-test build clean-data

## up: fetch the engine, build, and run `loupe up` on the embedded ClickHouse
up: chdb
	$(CARGO) run --quiet --bin loupe -- up --demo

## test: fetch what is missing and run the whole suite
test: setup-test
	$(CARGO) nextest run --workspace --profile ci
	scripts/run-extra-tests.sh

## check: formatting and lints, as CI runs them
check:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

chdb:
	@scripts/fetch-chdb.sh >/dev/null

build:
	$(CARGO) build --bin loupe

setup-test: chdb
	scripts/setup-test.sh

clean-data:
	rm -rf ./loupe-data
