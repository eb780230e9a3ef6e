#!/bin/sh
# Run every cargo-fuzz target in fuzz/ for SECONDS each (default 60).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Needs a nightly toolchain (libFuzzer's sanitizer coverage); without one it
# says so and exits 0 having run nothing: that is a skip, not a pass.
# Installs cargo-fuzz from crates.io when it is missing. New corpus entries
# go to fuzz/corpus/<target>/ (only the committed seed-* files are kept in
# git); a crash is saved under fuzz/artifacts/<target>/ and fails the run.
set -eu
cd "$(dirname "$0")/../fuzz"

secs="${1:-60}"
[ $# -gt 0 ] && shift
targets="$*"

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "fuzz: SKIPPED: no nightly toolchain (cargo-fuzz needs one; try 'rustup toolchain install nightly')"
    exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    cargo install --locked cargo-fuzz
fi
[ -n "$targets" ] || targets="$(cargo +nightly fuzz list)"

cargo +nightly fuzz build -O
failed=""
for t in $targets; do
    mkdir -p "corpus/$t"
    echo "fuzz: $t for ${secs}s"
    # -timeout: one input taking over 10 s is a finding (a hang).
    if ! cargo +nightly fuzz run -O "$t" "corpus/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"target/fuzz-$t.log" 2>&1; then
        failed="$failed $t"
        tail -n 40 "target/fuzz-$t.log"
    fi
    grep -E '^stat::number_of_executed_units|^Done' "target/fuzz-$t.log" | sed "s/^/fuzz: $t: /" || true
done
n_all=$(echo $targets | wc -w)
n_bad=$(echo $failed | wc -w)
echo "fuzz: each target ran ${secs}s"
if [ -n "$failed" ]; then
    echo "fuzz: FAILED:$failed (inputs in fuzz/artifacts/)"
fi
echo "fuzz: $((n_all - n_bad)) passed, $n_bad failed"
[ -z "$failed" ]
