# eda: the two set-up commands are `make demo` and `make test`; the rest are for development.
SHELL := /bin/bash
STACK := deploy/local/stack.sh
CARGO ?= cargo

.PHONY: help install stack-up stack-down stack-status demo test bench lint fmt build lambdas lambda-invoke

help:
	@echo "make demo        the daemon on the local stack with sample traffic"
	@echo "make test        every test, with the local stack started (and stopped) as needed"
	@echo "make bench       criterion benchmarks of the hot paths, and the end-to-end figure"
	@echo "make lint        rustfmt --check and clippy -D warnings"
	@echo "make lambdas     the five Lambda zips (deploy/sam/dist/), size-optimized profile"
	@echo "make lambda-invoke  the authorizer run through cargo lambda watch + invoke"
	@echo "make stack-up | stack-down | stack-status"

install:
	bash deploy/local/install.sh

stack-up:
	bash $(STACK) up

stack-down:
	bash $(STACK) down

stack-status:
	bash $(STACK) status

build:
	$(CARGO) build --workspace --all-targets

demo:
	bash $(STACK) up
	$(CARGO) run -q -p eda-daemon -- check-config --config config/local.toml

test:
	bash $(STACK) with $(CARGO) test --workspace --no-fail-fast

bench:
	$(CARGO) bench -p eda-actors

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

lambdas:
	bash deploy/sam/build-zips.sh

lambda-invoke:
	bash $(STACK) with bash deploy/sam/invoke-local.sh
