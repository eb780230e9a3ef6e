#!/bin/sh
# make bench: cnibox side by side with the Go reference plugins in one run.
# Installs the reference (Debian's containernetworking-plugins) and GNU time
# when missing, builds the static binary, runs the driver (benches/cni.rs)
# and writes bench/results.md. N=, WORKERS=, CASES=, QUICK=1 tune the run.
set -eu
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench: needs root (network namespaces)"; exit 1; }
need=""
[ -x /usr/lib/cni/ptp ] || need="$need containernetworking-plugins"
[ -x /usr/bin/time ] || need="$need time"
command -v iptables >/dev/null 2>&1 || need="$need iptables"
command -v strace >/dev/null 2>&1 || need="$need strace"
if [ -n "$need" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq $need
fi
[ -x target/static/cnibox ] || ./scripts/build.sh
# Every bench target: benches/cni.rs writes bench/results.md, the others
# (one per subsystem) bench/results-<name>.md.
CNIBOX=target/static/cnibox cargo bench --benches
# A real runtime: podman run --rm on cnibox vs the Go plugins.
./scripts/bench-podman.sh
