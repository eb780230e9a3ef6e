#!/bin/sh
# Placeholder until the benchmark issue lands: reports size only.
set -eu
bin=target/static/cnibox
echo "cnibox static binary: $(stat -c %s $bin) bytes"
if [ -d /usr/lib/cni ]; then
    echo "Go reference plugins in /usr/lib/cni: $(du -cb /usr/lib/cni/* | tail -1 | cut -f1) bytes"
fi
