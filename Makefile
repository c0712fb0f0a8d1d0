# tandem: two commands do all the set-up on a fresh machine.
#   make run   - bootstrap libtorch, build the release binary, run the quickstart
#                (2-3 minutes on 2 cores from an empty cache)
#   make test  - bootstrap libtorch, build, check style (make lint), run the whole test suite
#   make test-lang - the language crate's tests alone: no Python, no libtorch (under a minute once built)
#   make bench - tandem beside PyTorch eager and TRL (bench/NOTES.md)
#   make fuzz  - a million inputs through parse, check, plan and render: no panic
#   make real-text - a study on text with a pretrained model (a tiny one made here)
#   make controls - the instrument's positive, negative and A/A controls and their report
SHELL := /bin/bash
VENV  := .venv
# tch 0.26 links against the libtorch inside PyTorch 2.13.0 from the venv.
export LIBTORCH_USE_PYTORCH := 1
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
# libtorch's own threads: let tandem decide per node instead of oversubscribing.
CARGO ?= cargo

.PHONY: run test test-lang lint fuzz bench build bootstrap check-tools clean-cache real-text controls cross-vendor

bootstrap: $(VENV)/.torch-ok

$(VENV)/.torch-ok: scripts/bootstrap-venv.sh
	bash scripts/bootstrap-venv.sh
	touch $@

build: bootstrap
	$(CARGO) build --release --locked

run: build
	./target/release/tandem run experiments/quickstart.exp

# bench/setup.sh test puts transformers and tensorboard (pinned) into .venv:
# tests/pretrained.rs compares tandem's GPT-2 and Llama-family models with
# transformers, tests/tensorboard.rs reads tandem's event files with TensorBoard.
# The build first, then `make lint`, then the tests run:
# - not `make build`: `cargo build` settles features without the tests'
#   dependencies, so the test build would compile tandem, tandem-lang and
#   tokenizers a second time; `cargo test --no-run` builds the binary the tests run,
#   with the same features as `make test-lang` (crates/shared-deps);
# - the build before clippy: clippy then finds torch-sys's compiled C++
#   (its build script's output is shared with a check) instead of waiting
#   for it with one core idle.
# --no-fail-fast: one failing test binary must not hide what the others say.
# Last, each test group's time, slowest first (a group that grew shows).
test: bootstrap
	mkdir -p target
	$(CARGO) test --release --locked --workspace --no-run 2>&1 | tee target/test.log; exit $${PIPESTATUS[0]}
	$(MAKE) --no-print-directory lint
	bash bench/setup.sh test
	$(CARGO) test --release --locked --workspace --no-fail-fast 2>&1 | tee -a target/test.log; rc=$${PIPESTATUS[0]}; \
	  echo; echo "Test groups by time (scripts/test_times.sh target/test.log):"; \
	  bash scripts/test_times.sh target/test.log; exit $$rc

# crates/tandem-lang (syntax, check, plan, hfdir) builds without libtorch or
# the venv: its tests run first in CI, so a grammar mistake fails in minutes.
test-lang:
	$(CARGO) test --release --locked -p tandem-lang

# experiments/controls.exp: what the instrument must find and must not
# (tests/controls.rs holds its three verdicts under `make test`).
controls: build
	./target/release/tandem run experiments/controls.exp

# `portable` under an emulated AMD EPYC (qemu-user): the fingerprint and the
# micro study's golden PM against the committed bytes; about 17 minutes.
cross-vendor: build
	bash scripts/cross_vendor.sh

# experiments/real_text.exp on tiny random GPT-2 weights and a BPE tokenizer
# that scripts/tiny_hf_models.py makes in models/tiny (offline: transformers
# from bench/setup.sh writes them; nothing is downloaded).
real-text: build
	bash bench/setup.sh hf
	test -f models/tiny/gpt2/config.json || $(VENV)/bin/python scripts/tiny_hf_models.py models/tiny
	./target/release/tandem run experiments/real_text.exp

# The long never-panic campaign: FUZZ_CASES inputs (default a million) of
# arbitrary text, token soup, whole-language programs and edited experiments
# through parse, check, plan and every renderer, on every core.
FUZZ_CASES ?= 1000000
fuzz: build
	TANDEM_FUZZ_CASES=$(FUZZ_CASES) $(CARGO) test --release --locked --test never_panics fuzz_campaign -- --ignored --nocapture

# One format (rustfmt.toml) and no clippy warning anywhere: tests, bench included.
lint: bootstrap
	$(CARGO) fmt --all --check
	$(CARGO) clippy --release --locked --workspace --all-targets -- -D warnings

# Benchmarks beside PyTorch eager and TRL (installs TRL into .venv first);
# prints the table and writes bench/results.csv. BENCH_ARGS=--quick skips
# the quickstart study timings.
bench: build
	bash bench/setup.sh bench
	$(VENV)/bin/python bench/run.py $(BENCH_ARGS)

clean-cache:
	rm -rf cache/objects cache/tmp
