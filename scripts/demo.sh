#!/bin/sh
# The main job, end to end, on this machine: install the static cnibox into a
# temporary CNI bin dir, make a namespace that plays the node and three
# container namespaces, wire them with cnibox plugins exactly as a runtime
# does (exec by path, CNI_* env, config on stdin), then show what was made
# and ping. Nothing outside the namespaces and the temp dir is touched.
#
# usage: scripts/demo.sh [--json] [BIN]   (--json: also print each CNI result)
set -eu
json=false
if [ "${1:-}" = "--json" ]; then
    json=true
    shift
fi
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
links=$(cd "$work/bin" && ls | grep -vx cnibox)
echo "CNI bin dir: one $(($(stat -c %s "$bin") / 1024)) KiB static binary and $(echo "$links" | wc -l) links:"
echo "  $(echo $links)"
for ns in "$node" "$a" "$b" "$c"; do ip netns add "$ns"; done
ip -n "$node" link set lo up
echo "namespaces: a node and containers a, b, c (cnibox-demo-{node,a,b,c}-$tag)"

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

add() { # add NAME CONTAINER PLUGIN
    cni ADD "$2" "$work/loopback.json" >/dev/null
    cni ADD "$2" "$work/$3.json" >"$work/$1.result"
    if $json; then
        echo "-- $3 ADD result for $1:"
        cat "$work/$1.result"
        echo
    fi
}
addrs() { # addrs NETNS: the global addresses of eth0
    ip -n "$1" -o addr show dev eth0 scope global | awk '{printf "%s%s", sep, $4; sep=", "}'
}
add a "$a" ptp
add b "$b" ptp
add c "$c" bridge
echo "a: lo up; eth0 $(addrs "$a") (ptp: veth to the node, routed, masqueraded)"
echo "b: lo up; eth0 $(addrs "$b") (ptp)"
echo "c: lo up; eth0 $(addrs "$c") (bridge demo0 in the node, gateway 10.124.0.1)"
echo "node: $(ip -n "$node" -o link show type veth | wc -l) veth ends, bridge demo0 $(ip -n "$node" -o addr show dev demo0 scope global | awk '{printf "%s%s", sep, $4; sep=", "}')"

ipa=$(ip -n "$a" -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1)
ipb=$(ip -n "$b" -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1)
ipc=$(ip -n "$c" -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1)
ping_ok() { # ping_ok FROM_NS TO_IP WHAT [-6]
    ip netns exec "$1" ping ${4:-} -c 1 -W 2 "$2" >/dev/null
    echo "ping $3 $2: ok"
}
ping_ok "$a" 127.0.0.1 "a -> its own loopback"
ping_ok "$a" 10.123.0.1 "a -> its ptp gateway"
ping_ok "$a" "$ipb" "a -> b through the node"
ping_ok "$b" "$ipc" "b -> c, ptp to the bridge network"
ping_ok "$node" "$ipa" "node -> a"
ping_ok "$c" fd12:4::1 "c -> its bridge gateway over IPv6" -6
if command -v nft >/dev/null 2>&1; then
    rules=$(ip netns exec "$node" nft list chain inet cni_plugins_masquerade masq_checks | grep -c " masquerade comment " || true)
    echo "node: $rules masquerade rules, written over netlink (cnibox runs no nft/iptables binary)"
fi
for pair in "$a:ptp" "$b:ptp" "$c:bridge"; do
    cni DEL "${pair%%:*}" "$work/${pair#*:}.json"
    cni DEL "${pair%%:*}" "$work/loopback.json"
done
left=$(find "$work/data" -type f \( -name '*.*.*.*' -o -name '*:*' \) | grep -cv last_reserved || true)
echo "DEL of all three: $(ip -n "$node" -o link show type veth | wc -l) veth ends and $left reservations left"
$json || echo "(scripts/demo.sh --json also prints each CNI result)"
echo "demo ok"
