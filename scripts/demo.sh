#!/bin/sh
# The main job, end to end, on this machine: install the static cnibox into a
# temporary CNI bin dir, make a namespace that plays the node and three
# container namespaces, wire them with cnibox plugins exactly as a runtime
# does (exec by path, CNI_* env, config on stdin), show the results and ping.
# Nothing outside the namespaces and the temp dir is touched.
set -eu
bin=$(readlink -f "${1:-target/static/cnibox}")
[ "$(id -u)" = 0 ] || { echo "demo: needs root (network namespaces)"; exit 1; }

work=$(mktemp -d /tmp/cnibox-demo.XXXXXX)
tag="$$"
node="cnibox-demo-node-$tag"
a="cnibox-demo-a-$tag"
b="cnibox-demo-b-$tag"
c="cnibox-demo-c-$tag"

cni() { # cni COMMAND CONTAINER CONFIG
    plugin=$(sed -n 's/.*"type": *"\([^"]*\)".*/\1/p' "$3" | head -1)
    ip netns exec "$node" env CNI_COMMAND="$1" CNI_CONTAINERID="$2" CNI_NETNS="/run/netns/$2" \
        CNI_IFNAME=eth0 CNI_PATH="$work/bin" "$work/bin/$plugin" <"$3"
}

cleanup() {
    set +e
    for pair in "$a:ptp" "$b:ptp" "$c:bridge"; do
        ctr=${pair%%:*}
        cni DEL "$ctr" "$work/${pair#*:}.json" >/dev/null 2>&1
        cni DEL "$ctr" "$work/loopback.json" >/dev/null 2>&1
    done
    for ns in "$a" "$b" "$c" "$node"; do ip netns del "$ns" 2>/dev/null; done
    rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/bin" "$work/data"
cp "$bin" "$work/bin/cnibox"
"$work/bin/cnibox" install "$work/bin" >/dev/null
echo "== CNI bin dir: one $(stat -c %s "$bin")-byte binary and $(($(ls "$work/bin" | wc -l) - 1)) symlinks: $(cd "$work/bin" && ls | grep -v cnibox | tr '\n' ' ')"
for ns in "$node" "$a" "$b" "$c"; do ip netns add "$ns"; done
ip -n "$node" link set lo up

cat >"$work/loopback.json" <<JSON
{"cniVersion": "1.1.0", "name": "demo-lo", "type": "loopback"}
JSON
cat >"$work/ptp.json" <<JSON
{"cniVersion": "1.1.0", "name": "demo-ptp", "type": "ptp", "ipMasq": true,
 "ipam": {"type": "host-local", "subnet": "10.123.0.0/24", "routes": [{"dst": "0.0.0.0/0"}],
          "dataDir": "$work/data"}}
JSON
cat >"$work/bridge.json" <<JSON
{"cniVersion": "1.1.0", "name": "demo-br", "type": "bridge", "bridge": "demo0", "isGateway": true,
 "ipMasq": true, "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.124.0.0/24"}], [{"subnet": "fd12:4::/64"}]],
 "dataDir": "$work/data"}}
JSON

for ctr in "$a" "$b"; do
    cni ADD "$ctr" "$work/loopback.json" >/dev/null
    echo "== ptp ADD in $ctr"
    cni ADD "$ctr" "$work/ptp.json"
    echo
done
cni ADD "$c" "$work/loopback.json" >/dev/null
echo "== bridge ADD in $c"
cni ADD "$c" "$work/bridge.json"
echo

ipa=$(ip -n "$a" -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1)
ipb=$(ip -n "$b" -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1)
ipc=$(ip -n "$c" -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1)
ping_ok() { # ping_ok FROM_NS TO_IP WHAT
    ip netns exec "$1" ping -c 1 -W 2 "$2" >/dev/null
    echo "== ping $3 ($2): ok"
}
ping_ok "$a" 127.0.0.1 "a -> its own loopback"
ping_ok "$a" 10.123.0.1 "a -> its ptp gateway"
ping_ok "$a" "$ipb" "a -> b through the node"
ping_ok "$b" "$ipc" "b -> c (ptp to bridge network)"
ping_ok "$node" "$ipa" "node -> a"
ip netns exec "$c" ping -6 -c 1 -W 2 fd12:4::1 >/dev/null && echo "== ping c -> bridge gateway (fd12:4::1): ok"
if command -v nft >/dev/null 2>&1; then
    rules=$(ip netns exec "$node" nft list chain inet cni_plugins_masquerade masq_checks | grep -c " masquerade comment " || true)
    echo "== $rules masquerade rules in the node, written over netlink (cnibox runs no nft/iptables binary)"
fi
for pair in "$a:ptp" "$b:ptp" "$c:bridge"; do
    cni DEL "${pair%%:*}" "$work/${pair#*:}.json"
    cni DEL "${pair%%:*}" "$work/loopback.json"
done
left=$(find "$work/data" -type f \( -name '*.*.*.*' -o -name '*:*' \) | grep -cv last_reserved || true)
echo "== DEL done: $left reservations left in the host-local store"
echo "== demo ok"
