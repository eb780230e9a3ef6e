#!/bin/sh
# The main job, end to end: install cnibox into a temporary CNI bin dir, make
# two network namespaces, wire them with cnibox plugins exactly as a runtime
# would (exec by path, CNI_* env, config on stdin), show the results and ping.
set -eu
bin=$(readlink -f "${1:-target/static/cnibox}")
[ "$(id -u)" = 0 ] || { echo "demo: needs root (network namespaces)"; exit 1; }

work=$(mktemp -d /tmp/cnibox-demo.XXXXXX)
a="cnibox-demo-a-$$"
b="cnibox-demo-b-$$"
cleanup() {
    for ns in "$a" "$b"; do
        for conf in "$work"/*.json; do
            [ -f "$conf" ] || continue
            plugin=$(sed -n 's/.*"type": *"\([^"]*\)".*/\1/p' "$conf" | head -1)
            CNI_COMMAND=DEL CNI_CONTAINERID="$ns" CNI_NETNS="/run/netns/$ns" CNI_IFNAME=eth0 \
                CNI_PATH="$work/bin" "$work/bin/$plugin" <"$conf" >/dev/null 2>&1 || true
        done
        ip netns del "$ns" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/bin"
cp "$bin" "$work/bin/cnibox"
"$work/bin/cnibox" install "$work/bin"
echo "== $(ls "$work/bin" | wc -l) files in the CNI bin dir, one binary of $(stat -c %s "$bin") bytes"
ip netns add "$a"
ip netns add "$b"

cni() { # cni COMMAND NETNS CONFIG
    plugin=$(sed -n 's/.*"type": *"\([^"]*\)".*/\1/p' "$3" | head -1)
    CNI_COMMAND="$1" CNI_CONTAINERID="$2" CNI_NETNS="/run/netns/$2" CNI_IFNAME=eth0 \
        CNI_PATH="$work/bin" "$work/bin/$plugin" <"$3"
}

cat >"$work/10-loopback.json" <<JSON
{"cniVersion": "1.1.0", "name": "demo-lo", "type": "loopback"}
JSON

for ns in "$a" "$b"; do
    echo "== loopback ADD in $ns"
    cni ADD "$ns" "$work/10-loopback.json"
    echo
    ip netns exec "$ns" ping -c 1 -W 1 127.0.0.1 >/dev/null
    echo "== $ns: ping 127.0.0.1 ok"
done
echo "== demo ok"
