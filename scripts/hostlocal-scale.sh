#!/bin/sh
# Measure host-local as the pool fills: time per ADD and DEL with 1 and with
# N (default 60000) existing reservations in a /16, cnibox against the Go
# reference in /usr/lib/cni (when installed). A measurement, not a test.
#
#   scripts/hostlocal-scale.sh [N]        (K=20 timed calls per case)
#
# The reservations are written directly, as files the Go plugin would have
# left, so cnibox's first call after them rebuilds its index (reported as
# "first ADD"); the timed calls after it show the steady state.
# Needs python3 (for timing). Measures a fresh release build unless CNIBOX
# names a binary.
set -eu
cd "$(dirname "$0")/.."
N=${1:-60000}
K=${K:-20}
if [ -n "${CNIBOX:-}" ]; then
    bin=$CNIBOX
else
    cargo build -q --release
    bin=target/release/cnibox
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/bin"
ln -s "$(readlink -f "$bin")" "$work/bin/host-local"

python3 - "$N" "$K" "$work" <<'EOF'
import json, os, statistics, subprocess, sys, time

n, k, work = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
impls = [("cnibox", os.path.join(work, "bin", "host-local"))]
if os.path.exists("/usr/lib/cni/host-local"):
    impls.append(("go 1.1.1", "/usr/lib/cni/host-local"))

def ip(i):
    # 10.20.0.2 onwards, never the gateway (.0.1) or a broadcast.
    i += 2
    return "10.20.%d.%d" % (i // 256, i % 256)

def populate(d, count):
    net = os.path.join(d, "scale")
    os.makedirs(net)
    for i in range(count):
        with open(os.path.join(net, ip(i)), "w") as f:
            f.write("pre%d\r\neth0" % i)
    with open(os.path.join(net, "last_reserved_ip.0"), "w") as f:
        f.write(ip(count - 1))

def call(exe, cmd, cid, conf):
    env = {"CNI_COMMAND": cmd, "CNI_CONTAINERID": cid, "CNI_NETNS": "/proc/self/ns/net",
           "CNI_NETNS_OVERRIDE": "1", "CNI_IFNAME": "eth0", "CNI_PATH": os.path.dirname(exe),
           "PATH": os.environ.get("PATH", "")}
    t = time.perf_counter()
    p = subprocess.run([exe], input=conf, env=env, capture_output=True)
    dt = (time.perf_counter() - t) * 1000
    if p.returncode != 0:
        sys.exit("%s %s failed: %s" % (exe, cmd, p.stdout.decode()))
    return dt

def fmt(xs):
    xs = sorted(xs)
    return "p50 %7.2f ms  p90 %7.2f ms" % (statistics.median(xs), xs[int(len(xs) * 0.9) - 1 if len(xs) > 1 else 0])

print("host-local, %d timed calls per case, /16 pool" % k)
results = {}
for name, exe in impls:
    for count in (1, n):
        d = os.path.join(work, "%s-%d" % (name.split()[0], count))
        populate(d, count)
        conf = json.dumps({"cniVersion": "1.0.0", "name": "scale", "type": "bridge",
                           "ipam": {"type": "host-local", "subnet": "10.20.0.0/16", "dataDir": d}}).encode()
        first = call(exe, "ADD", "warm", conf)
        adds = [call(exe, "ADD", "c%d" % i, conf) for i in range(k)]
        dels = [call(exe, "DEL", "c%d" % i, conf) for i in range(k)]
        results[(name, count)] = statistics.median(adds)
        print("%-9s %6d reservations: first ADD %8.2f ms | ADD %s | DEL %s" % (name, count, first, fmt(adds), fmt(dels)))
for name, _ in impls:
    print("%s: ADD at %d / ADD at 1 = %.2fx" % (name, n, results[(name, n)] / results[(name, 1)]))
EOF
