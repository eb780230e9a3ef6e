#!/bin/sh
# make bench, part: a real runtime. `podman run --rm` of a busybox-static
# container on podman's default chain (bridge + portmap + firewall + tuning)
# with cnibox's applets vs Debian's Go plugins, and with `--network none`:
# the CNI share of a container start is the difference of the medians.
# Everything in a node netns and a temp podman home of its own (as
# tests/podman.rs); writes bench/results-podman.md. RUNS= sets the count.
set -eu
cd "$(dirname "$0")/.."
out=bench/results-podman.md
RUNS=${RUNS:-9}
for t in podman runc /bin/busybox nsenter; do
    if ! command -v "$t" >/dev/null 2>&1 && [ ! -x "$t" ]; then
        printf '# podman run --rm: cnibox vs the Go plugins\n\nSKIP: %s is not installed (.ci/run installs it)\n' "$t" >"$out"
        echo "SKIP: bench-podman: $t missing"
        exit 0
    fi
done
T=$(mktemp -d /tmp/cnibox-bench-podman.XXXXXX)
NS=cbpodman$$
cleanup() {
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$T"
}
trap cleanup EXIT INT TERM
ip netns add "$NS"
ip -n "$NS" link set lo up
mkdir -p "$T/cnibox" "$T/rootfs/bin" "$T/net.d"
cp target/static/cnibox "$T/cnibox/cnibox"
"$T/cnibox/cnibox" install "$T/cnibox" >/dev/null
cp /bin/busybox "$T/rootfs/bin/busybox"
ln -s busybox "$T/rootfs/bin/true"
conf() { # plugin dir
    cat >"$T/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[network]
network_backend = "cni"
cni_plugin_dirs = ["$1"]
network_config_dir = "$T/net.d"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
CONF
}
cat >"$T/net.d/benchpm.conflist" <<CONF
{"cniVersion": "1.0.0", "name": "benchpm", "plugins": [
  {"type": "bridge", "bridge": "cbpm0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
   "ipam": {"type": "host-local", "routes": [{"dst": "0.0.0.0/0"}],
            "ranges": [[{"subnet": "10.89.9.0/24", "gateway": "10.89.9.1"}]], "dataDir": "$T/ipam"}},
  {"type": "portmap", "capabilities": {"portMappings": true}, "dataDir": "$T/portmap"},
  {"type": "firewall", "dataDir": "$T/firewall"},
  {"type": "tuning"}]}
CONF
export CONTAINERS_CONF="$T/containers.conf"
P="nsenter --net=/run/netns/$NS podman --root $T/root --runroot $T/run --storage-driver vfs"
conf "$T/cnibox"
tar -C "$T/rootfs" -c . | $P import - localhost/cnibox-bench-bb >/dev/null
now() { date +%s%N; }
# one timed `podman run --rm`: prints microseconds
run_once() { # network args...
    net=$1
    shift
    s=$(now)
    $P run --rm --network "$net" "$@" localhost/cnibox-bench-bb /bin/true >/dev/null 2>"$T/err" || {
        cat "$T/err" >&2
        echo fail
        return
    }
    echo $(( ($(now) - s) / 1000 ))
}
median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) print "nan"; else print a[int((NR+1)/2)]}'; }
: >"$T/none"; : >"$T/cnibox.t"; : >"$T/go.t"
# warm-up (image layers, podman's own caches) on each side
conf "$T/cnibox"; run_once none >/dev/null; run_once benchpm -p 18080:80 >/dev/null
conf /usr/lib/cni; run_once benchpm -p 18080:80 >/dev/null
i=0
while [ $i -lt "$RUNS" ]; do
    conf "$T/cnibox"; run_once none >>"$T/none"
    conf "$T/cnibox"; run_once benchpm -p 18080:80 >>"$T/cnibox.t"
    conf /usr/lib/cni; run_once benchpm -p 18080:80 >>"$T/go.t"
    i=$((i + 1))
done
# Where the CNI share goes: the plugin processes' own lifetimes (exec to
# exit) in traced runs (strace on execve/exit only, seccomp-filtered; its
# overhead is in both sides), split at runc's first exec into the start
# (VERSION + ADD of each plugin) and the teardown (VERSION + DEL).
plugin_ms() { # plugin dir -> "start teardown" in ms
    conf "$1"
    strace -f --seccomp-bpf -ttt -e trace=execve,exit_group -o "$T/tr" \
        $P run --rm --network benchpm -p 18080:80 localhost/cnibox-bench-bb /bin/true >/dev/null 2>&1 || true
    awk -v dir="$1/" '
        /execve\("/ { split($0, q, "\""); if (index(q[2], dir) == 1) start[$1] = $2;
                      if (q[2] ~ /runc$/ && !runc) runc = $2 }
        /\+\+\+ exited/ { if ($1 in start) { d = ($2 - start[$1]) * 1000;
                      if (!runc || start[$1] < runc) a += d; else b += d; delete start[$1] } }
        END { printf "%.1f %.1f\n", a, b }' "$T/tr"
}
if command -v strace >/dev/null 2>&1; then
    : >"$T/pc"; : >"$T/pg"
    i=0
    while [ $i -lt 3 ]; do
        plugin_ms "$T/cnibox" >>"$T/pc"
        plugin_ms /usr/lib/cni >>"$T/pg"
        i=$((i + 1))
    done
fi
fails=$(cat "$T/none" "$T/cnibox.t" "$T/go.t" | grep -c fail || true)
n0=$(grep -v fail "$T/none" | median)
nc=$(grep -v fail "$T/cnibox.t" | median)
ng=$(grep -v fail "$T/go.t" | median)
ms() { awk -v u="$1" 'BEGIN {printf "%.1f ms", u/1000}'; }
share() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f ms", (a-b)/1000}'; }
ratio() { awk -v g="$1" -v c="$2" -v z="$3" 'BEGIN {if (c-z > 0) printf "%.1fx", (g-z)/(c-z); else print "-"}'; }
{
    printf '# podman run --rm: cnibox vs the Go plugins\n\n'
    printf '%s, %s runs per side, interleaved. podman %s (CNI backend, runc, vfs storage), a busybox-static image, `-p 18080:80`.\n' \
        "$(date -u '+%Y-%m-%d %H:%M UTC')" "$RUNS" "$(podman --version | awk '{print $3}')"
    printf 'Chain: bridge (ipMasq, hairpin) + portmap + firewall + tuning (podman'"'"'s default). The CNI share is the median with the network minus the median with `--network none`.\n\n'
    printf '| | median `podman run --rm` | CNI share |\n|---|---|---|\n'
    printf '| --network none | %s | - |\n' "$(ms "$n0")"
    printf '| Go plugins (Debian 1.1.1) | %s | %s |\n' "$(ms "$ng")" "$(share "$ng" "$n0")"
    printf '| cnibox | %s | %s |\n' "$(ms "$nc")" "$(share "$nc" "$n0")"
    printf '\nCNI share ratio (Go / cnibox): %s. Failed runs: %s.\n' "$(ratio "$ng" "$nc" "$n0")" "$fails"
    if [ -s "$T/pc" ]; then
        printf '\n## Inside the plugins (3 traced runs per side, median)\n\n'
        printf 'The plugin processes'"'"' own time, exec to exit, under strace (execve/exit only): podman runs VERSION then ADD for each plugin at start, VERSION then DEL at teardown. The rest of the difference above is podman'"'"'s own network work (its netns, port reservations, CNI cache). strace stops every new thread and process, and the Go plugins start many (runtime threads, iptables): their figures are inflated more than ours, so the untraced medians above are the fair comparison.\n\n'
        printf '| | start (VERSION + ADD) | teardown (VERSION + DEL) |\n|---|---|---|\n'
        printf '| Go plugins | %s ms | %s ms |\n' "$(cut -d' ' -f1 "$T/pg" | median)" "$(cut -d' ' -f2 "$T/pg" | median)"
        printf '| cnibox | %s ms | %s ms |\n' "$(cut -d' ' -f1 "$T/pc" | median)" "$(cut -d' ' -f2 "$T/pc" | median)"
    fi
} >"$out"
cat "$out"
