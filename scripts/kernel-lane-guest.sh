#!/bin/bash
# Runs inside the kernel lane's VM (scripts/test-kernel.sh), in the host's
# userland: every planned test binary as `make test` runs it; the output
# goes to the console, the skip logs and the exit status to the lane share.
set -u
lane=$1
. "$lane/plan.env"
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root RUST_BACKTRACE=1
[ -n "$CI" ] && export CI
cd "$ROOT" || exit 1
echo "guest: Linux $(uname -r), $(nproc) CPU"
# iptables-legacy loads x_tables by running the kernel's modprobe helper,
# which lives outside this chroot: load them here (a distribution has them
# loaded or loadable; the firewall plugin's legacy path needs them).
for m in ip_tables ip6_tables iptable_filter ip6table_filter openvswitch; do
    modprobe -d "$KDIR" "$m" 2>/dev/null || echo "guest: modprobe $m failed"
done
status=0
count=0
for t in $TESTS; do
    name=${t%%=*}
    exe=${t#*=}
    echo "guest: ==> $name"
    t0=$(date +%s)
    eval "filter=\${FILTER_$name:-\$FILTER}"
    # shellcheck disable=SC2086
    "$exe" --test-threads="$THREADS" $filter 2>&1 | tee "$lane/$name.out"
    rc=${PIPESTATUS[0]}
    echo "guest: $name: $(($(date +%s) - t0)) s"
    n=$(sed -n 's/^test result: [a-zA-Z]*\. \([0-9]*\) passed.*/\1/p' "$lane/$name.out" | head -n1)
    count=$((count + ${n:-0}))
    if [ "$rc" != 0 ]; then
        echo "guest: $name FAILED (exit $rc)"
        status=1
    fi
done
cp "$TARGET_TMPDIR"/skips/*.log "$lane/skips/" 2>/dev/null
echo "$count" > "$lane/count"
echo "$status" > "$lane/status"
sync
