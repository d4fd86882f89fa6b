# eda: the two set-up commands are `make demo` and `make test`; the rest are for development.
SHELL := /bin/bash
STACK := deploy/local/stack.sh
CARGO ?= cargo

.PHONY: help install stack-up stack-down stack-status demo test chaos bench bench-e2e bench-ir lint deploy-check fmt build lambdas lambda-invoke

help:
	@echo "make demo        the daemon on the local stack with sample traffic"
	@echo "make test        every test, with the local stack started (and stopped) as needed"
	@echo "make chaos       the chaos suite: kills, outages, poison; prints the table of what was lost (0)"
	@echo "make bench       criterion benchmarks of the hot paths, then make bench-e2e"
	@echo "make bench-e2e   the release daemon on the blackhole AWS sink: a 200K backlog, raw consume, 10K msg/s"
	@echo "make bench-ir    instructions per event of the hot paths (callgrind; steady on a noisy machine)"
	@echo "make lint        rustfmt --check, clippy -D warnings, and the deploy checks"
	@echo "make deploy-check  Dockerfile, Kubernetes, Prometheus, Grafana, CloudFormation/SAM and IAM, with real tools"
	@echo "make lambdas     the five arm64 Lambda zips (deploy/sam/dist/); TARGET=x86_64-unknown-linux-gnu for x86_64"
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
	CARGO="$(CARGO)" bash deploy/local/demo.sh

test:
	bash $(STACK) with $(CARGO) test --workspace --no-fail-fast
	CARGO="$(CARGO)" bash deploy/check.sh

chaos:
	bash $(STACK) with env CARGO="$(CARGO)" bash deploy/local/chaos.sh

bench:
	$(CARGO) bench -p eda-core
	$(MAKE) bench-e2e

# Only the broker of the local stack is used (every AWS endpoint is the sink). The backlog topic
# is kept on the broker between runs (keyed by its spec) while the stack stays up.
bench-e2e:
	$(CARGO) build -q --release -p eda-daemon -p eda-loadtest
	bash $(STACK) with $(CARGO) run -q --release -p eda-loadtest -- bench-e2e $(BENCH_ARGS)

bench-ir:
	CARGO="$(CARGO)" bash core/benches/instructions.sh

# The deploy checks' tools (cfn-lint, kubectl, promtool, ...) come from install.sh, which does
# nothing when they are there, so both targets work on a fresh machine.
lint: install
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps
	CARGO="$(CARGO)" bash deploy/check.sh

deploy-check: install
	CARGO="$(CARGO)" bash deploy/check.sh

lambdas:
	bash deploy/sam/build-zips.sh

lambda-invoke:
	bash $(STACK) with bash deploy/sam/invoke-local.sh
