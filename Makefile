# cnibox: `make demo` runs the main job, `make test` runs every test.
# `make install`: BINDIR is the CNI bin dir; DESTDIR, as usual, a staging
# root prefixed to it (packaging), empty for a real install. FORCE=1 lets
# the links replace other files of the same names (say the Go plugins).
BINDIR ?= /opt/cni/bin
DESTDIR ?=
BIN := target/static/cnibox

.PHONY: build test test-kernel lint unit demo install bench bench-quick clean symlinks fuzz

build:
	./scripts/build.sh

# Every test: formatting, lints, unit and integration tests (the kernel
# tests need root and make their own network namespaces), and a smoke run
# of the static binary.
# Ends with the tests that skipped and why (also when a test failed).
test: lint build
	rm -rf target/tmp/skips
	cargo test --all-targets --no-fail-fast -- --test-threads=4; rc=$$?; ./scripts/skip-summary.sh; exit $$rc
	./scripts/smoke.sh $(BIN)

# The kernel integration tests again on Debian's stock kernel in qemu: the
# tests this machine's kernel skips run there (needs root and
# scripts/kernel-lane-deps.sh once; see README).
test-kernel:
	./scripts/test-kernel.sh

# The fuzz harness compiles the src tree by path under cfg(fuzzing); check
# it builds here (stable is enough) so a refactor cannot break `make fuzz`.
lint:
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy --no-default-features -- -D warnings
	RUSTFLAGS="--cfg fuzzing" cargo check --quiet --manifest-path fuzz/Cargo.toml --target-dir fuzz/target/check

unit:
	cargo test --bins

# Every cargo-fuzz target for FUZZ_SECONDS each (needs nightly; skips with
# a reason without it). .ci/run calls it after `make test`.
FUZZ_SECONDS ?= 60
fuzz:
	./scripts/fuzz.sh $(FUZZ_SECONDS)

# Builds quietly (errors still show), then tells the demo's story.
demo:
	@QUIET=1 ./scripts/build.sh
	@./scripts/demo.sh $(BIN)

install: build
	install -d $(DESTDIR)$(BINDIR)
	install -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/cnibox.new
	mv $(DESTDIR)$(BINDIR)/cnibox.new $(DESTDIR)$(BINDIR)/cnibox
	$(DESTDIR)$(BINDIR)/cnibox install $(if $(FORCE),--force) $(DESTDIR)$(BINDIR)

bench: build
	./scripts/bench.sh

bench-quick: build
	QUICK=1 ./scripts/bench.sh

symlinks:
	./scripts/mk-symlinks.sh

clean:
	cargo clean
