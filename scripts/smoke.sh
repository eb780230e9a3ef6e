#!/bin/sh
# Smoke-test the static binary: it is static, dispatches by name, answers
# VERSION and brings lo up in a throwaway namespace.
set -eu
bin=$(readlink -f "${1:-target/static/cnibox}")
ldd "$bin" 2>&1 | grep -q "statically linked"
dir=$(mktemp -d)
ns="cnibox-smoke-$$"
trap 'ip netns del "$ns" 2>/dev/null || true; rm -rf "$dir"' EXIT
"$bin" install "$dir" >/dev/null
CNI_COMMAND=VERSION "$dir/loopback" | grep -q '"supportedVersions"'
if [ "$(id -u)" = 0 ]; then
    ip netns add "$ns"
    echo '{"cniVersion":"1.0.0","name":"smoke","type":"loopback"}' |
        CNI_COMMAND=ADD CNI_CONTAINERID=smoke CNI_NETNS="/run/netns/$ns" CNI_IFNAME=eth0 CNI_PATH="$dir" \
        "$dir/loopback" | grep -q '"127.0.0.1/8"'
    ip -n "$ns" link show lo | grep -q "UP"
fi
echo "smoke: $bin ($(stat -c %s "$bin") bytes) ok"
