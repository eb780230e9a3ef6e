#!/bin/sh
# Regenerate symlinks/ from the applet table (`cnibox --list`): one relative
# link per applet, pointing at a `cnibox` next to it.
set -eu
cd "$(dirname "$0")/.."
cargo build -q
rm -rf symlinks
mkdir symlinks
for name in $(target/debug/cnibox --list); do
    ln -s cnibox "symlinks/$name"
done
ls symlinks
