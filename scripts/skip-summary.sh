#!/bin/sh
# Print the tests that skipped, with their kind and reason, from the skip
# logs tests/common writes ($CARGO_TARGET_TMPDIR/skips/<pid>.log, one line
# per skip: kind, binary::test, reason), then clear them.
#   scripts/skip-summary.sh [DIR]   (default target/tmp/skips)
cd "$(dirname "$0")/.." || exit 1
dir=${1:-target/tmp/skips}
logs=$(ls "$dir"/*.log 2>/dev/null)
if [ -z "$logs" ]; then
    echo "skipped: none"
    exit 0
fi
# shellcheck disable=SC2086
n=$(cat $logs | wc -l)
echo "skipped: $n test(s)"
# shellcheck disable=SC2086
sort $logs | awk -F "\t" '{sub(/-[0-9a-f]+::/, "::", $2); printf "  %-7s %s: %s\n", $1, $2, $3}'
# shellcheck disable=SC2086
if [ -z "${IN_KERNEL_LANE:-}" ] && grep -q '^Kernel' $logs; then
    echo "  (Kernel: this kernel lacks the feature; make test-kernel runs them)"
fi
# shellcheck disable=SC2086
rm -f $logs
